#!/usr/bin/env python
"""Synthesise the built-in English speech corpus with flite, with phone alignments and splits.

Texts are counting sequences ("twenty one twenty two twenty three") and short sentences drawn
from templates over a small vocabulary ("anna painted the green box in the garden"), 3-10
words each (speech_texts.py). Each text is spoken by one of flite's voices; `flite -psdur`
also prints the duration of every phone, stored as [[phone, start_s, end_s], ...] for
unit-quality metrics (phone purity, PNMI).

Splits, so that both unseen text and an unseen voice are measured:
  train  training voices × training sentences (one distinct sentence per utterance)
  valid  training voices × held-out sentences (~N/30 utterances)
  test   the held-out voice (--test-voice) × other held-out sentences (~N/20 utterances)
About 10 % of the sentences are held out and never spoken in train; they are listed in
OUT/heldout_sentences.txt so that text-only training can exclude them too.

Real speech: the 483 recorded prompts of a real voice that ship with the demo
(data/real_speech_en_female, CC-BY-SA-3.0; --real-voice picks another folder of recordings with
a metadata.jsonl, `none` leaves them out) are split by sentence: about 75 % of the utterances
go to train, 8 % to valid and 17 % to
  test_real  the real voice × its held-out sentences (no phone alignments)

Layout: OUT/{train,valid,test,test_real}/*.wav|flac (flite's wavs: 16-bit mono, 16 kHz,
except the kal voice at 8 kHz; loaders resample), OUT/{split}/metadata.jsonl (one JSON object
per line: file, text, voice, phones (flite only), duration), OUT/corpus.json (settings and
summary). The corpus is built in a temporary sibling directory and renamed into place, so OUT
either is complete or doesn't exist; a complete OUT is left alone.

Usage: python recipes/builtin/make_speech_corpus.py --out runs/demo/data/speech
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

VOICES = ("kal", "kal16", "awb", "rms", "slt")  # awb_time is a limited-domain (clock) voice
SPLITS = ("train", "valid", "test", "test_real")
# The recorded prompts of a real voice shipped with the demo (their README gives the licence;
# real_voice.py splits them).
REAL_VOICE = Path(__file__).resolve().parent / "data" / "real_speech_en_female"
HELDOUT_SHARE = 0.1

# ---------------------------------------------------------------------------------------------
# Splits (the texts themselves: speech_texts.py)


def split_sizes(num_utterances: int) -> dict[str, int]:
    """Utterances per split: test ~5 %, valid ~3.3 % (at least 2 each), train the rest."""
    n_test = max(2, round(num_utterances * 0.05))
    n_valid = max(2, round(num_utterances / 30))
    n_train = num_utterances - n_test - n_valid
    if n_train < 1:
        raise ValueError(f"--num-utterances {num_utterances} is too small (need at least 5)")
    return {"train": n_train, "valid": n_valid, "test": n_test}


def plan_corpus(
    num_utterances: int, test_voice: str, voices: list[str], seed: int
) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """(text, voice) pairs per split, and the held-out sentences.

    Training voices are assigned round-robin over a shuffled order, so each gets the same share.
    """
    if test_voice not in voices:
        raise ValueError(f"--test-voice {test_voice!r} is not one of the voices {voices}")
    train_voices = [v for v in voices if v != test_voice]
    if not train_voices:
        raise ValueError("need at least one training voice besides the test voice")
    rng = random.Random(seed)
    sizes = split_sizes(num_utterances)
    n_heldout = max(sizes["valid"] + sizes["test"], round(HELDOUT_SHARE * num_utterances))
    from recipes.builtin.speech_texts import sentence_pool  # here: --help needs no venv

    texts = sentence_pool(sizes["train"] + n_heldout, rng)
    heldout, train_texts = texts[:n_heldout], texts[n_heldout:]

    def with_voices(split_texts: list[str], pool: list[str]) -> list[tuple[str, str]]:
        order = pool[:]
        rng.shuffle(order)
        return [(t, order[i % len(order)]) for i, t in enumerate(split_texts)]

    plan = {
        "train": with_voices(train_texts, train_voices),
        "test": [(t, test_voice) for t in heldout[: sizes["test"]]],
        "valid": with_voices(heldout[sizes["test"] : sizes["test"] + sizes["valid"]], train_voices),
    }
    return plan, heldout


# ---------------------------------------------------------------------------------------------
# Synthesis


def flite_voices() -> list[str]:
    """Voices compiled into this machine's flite (parsed from ``flite -lv``)."""
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=True).stdout
    return out.split(":", 1)[1].split() if ":" in out else out.split()


def parse_psdur(stdout: str, duration: float | None = None) -> list[list]:
    """Turn ``flite -psdur`` output ("pau:0.197 th:0.297 ...", phone end times) into
    [[phone, start, end], ...] seconds.

    The kal/kal16 diphone voices write a wav about 0.11 s shorter than their last end time (the
    final pause is cut; the onsets were checked to line up), so ends are clipped to the audio
    ``duration`` and phones starting after it are dropped.
    """
    phones, start = [], 0.0
    for item in stdout.split():
        phone, sep, end = item.rpartition(":")
        if not sep:
            continue
        end_s = float(end)
        if duration is not None:
            if start >= duration:
                break
            end_s = min(end_s, duration)
        phones.append([phone, round(start, 4), round(end_s, 4)])
        start = end_s
    if not phones:
        raise ValueError(f"no phone durations in flite output: {stdout[:200]!r}")
    return phones


def synthesize(text: str, voice: str, wav_path: Path) -> dict:
    """Run one flite process; return the metadata record for the wav it wrote."""
    import soundfile as sf  # imported here so --help works without the venv

    proc = subprocess.run(
        ["flite", "-voice", voice, "-psdur", "-t", text, "-o", str(wav_path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not wav_path.exists():
        raise RuntimeError(f"flite failed for voice {voice} on {text!r}: {proc.stderr.strip()}")
    info = sf.info(str(wav_path))
    duration = info.frames / info.samplerate
    return {
        "file": wav_path.name,
        "text": text,
        "voice": voice,
        "phones": parse_psdur(proc.stdout, duration),
        "duration": round(duration, 4),
    }


def is_complete(out: Path) -> bool:
    return (out / "corpus.json").is_file() and all(
        (out / s / "metadata.jsonl").is_file() for s in SPLITS
    )


def build_corpus(
    out: Path,
    num_utterances: int = 3000,
    test_voice: str = "rms",
    seed: int = 0,
    jobs: int = 2,
    voices: list[str] | None = None,
    real_voice: Path | None = REAL_VOICE,
    real_voice_repeat: int = 1,
) -> dict:
    """Build the corpus at ``out`` (skipped if already complete); return its summary.

    With `real_voice` (a folder of recordings with metadata.jsonl), its recordings are copied
    in, split by sentence (real_voice.py); their held-out part is the test_real split."""
    out = Path(out)
    if is_complete(out):
        summary = json.loads((out / "corpus.json").read_text())
        print(f"{out} is already complete; skipping (delete it to rebuild).")
        return summary
    if out.exists():
        raise FileExistsError(f"{out} exists but is not a complete corpus; remove it first")
    if shutil.which("flite") is None:
        raise SystemExit("flite is not installed; install it with: apt-get install flite")
    voices = list(voices or VOICES)
    missing = sorted(set(voices) - set(flite_voices()))
    if missing:
        raise SystemExit(f"this flite lacks the voices {missing}; it has {flite_voices()}")

    t0 = time.time()
    plan, heldout = plan_corpus(num_utterances, test_voice, voices, seed)
    from recipes.builtin.real_voice import real_voice_records  # here: --help needs no venv

    real = real_voice_records(Path(real_voice), seed, real_voice_repeat) if real_voice else {}
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        jobs_list = []
        for split in SPLITS:
            (tmp / split).mkdir()
        for split, pairs in plan.items():
            for i, (text, voice) in enumerate(pairs):
                jobs_list.append((split, text, voice, tmp / split / f"{i:05d}_{voice}.wav"))
        # Threads suffice: each one just waits on its flite process.
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            records = list(pool.map(lambda j: synthesize(j[1], j[2], j[3]), jobs_list))
        for split, recs in real.items():
            for r in recs:
                shutil.copyfile(r.pop("source"), tmp / split / r["file"])
        summary: dict = {
            "settings": dict(
                num_utterances=num_utterances, test_voice=test_voice, seed=seed, voices=voices,
                real_voice=str(real_voice) if real_voice else None,
                real_voice_repeat=real_voice_repeat,
            ),
            "splits": {},
        }
        for split in SPLITS:
            recs = [r for j, r in zip(jobs_list, records, strict=True) if j[0] == split]
            recs += real.get(split, [])
            with open(tmp / split / "metadata.jsonl", "w") as f:
                for r in recs:
                    f.write(json.dumps(r) + "\n")
            per_voice: dict[str, int] = {}
            for r in recs:
                per_voice[r["voice"]] = per_voice.get(r["voice"], 0) + 1
            summary["splits"][split] = {
                "utterances": len(recs),
                "minutes": round(sum(r["duration"] for r in recs) / 60, 2),
                "sentences": len({r["text"] for r in recs}),
                "voices": dict(sorted(per_voice.items())),
            }
        summary["heldout_sentences"] = len(heldout)
        summary["seconds"] = round(time.time() - t0, 1)
        (tmp / "heldout_sentences.txt").write_text("".join(t + "\n" for t in heldout))
        (tmp / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n")
        tmp.rename(out)  # atomic on one filesystem: OUT appears only once it is complete
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def print_summary(out: Path, summary: dict) -> None:
    for split, s in summary["splits"].items():
        print(
            f"{split:5s}: {s['utterances']:5d} utterances, {s['minutes']:6.1f} min, "
            f"{s['sentences']} distinct sentences, voices {s['voices']}"
        )
    print(
        f"held-out sentences: {summary['heldout_sentences']}; "
        f"built in {summary['seconds']:.1f} s -> {out}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Needs flite (apt-get install flite).",
        epilog="Splits: train = training voices x training sentences; valid = training voices x "
        "held-out sentences; test = --test-voice x held-out sentences; test_real = the real "
        "voice x its held-out sentences. Output: OUT/{train,valid,test,test_real}/*.wav|flac "
        "+ metadata.jsonl, OUT/corpus.json.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory (created)")
    parser.add_argument(
        "--num-utterances",
        type=int,
        default=3000,
        help="total utterances over all splits (default 3000)",
    )
    parser.add_argument(
        "--test-voice", default="rms", help="voice heard only in the test split (default rms)"
    )
    parser.add_argument(
        "--voices",
        default=",".join(VOICES),
        help=f"comma-separated flite voices (default {','.join(VOICES)})",
    )
    parser.add_argument(
        "--real-voice",
        default=str(REAL_VOICE),
        help="folder of real recordings (audio + metadata.jsonl with file_name, text, duration) "
        "mixed in and split by sentence into train/valid/test_real; 'none' = flite only "
        f"(default: the shipped prompts, {REAL_VOICE.relative_to(REAL_VOICE.parents[2])})",
    )
    parser.add_argument(
        "--real-voice-repeat",
        type=int,
        default=1,
        help="copies of each real training recording in train (a larger share of the real "
        "voice in the batches; default 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for texts and voices")
    parser.add_argument(
        "--jobs", type=int, default=2, help="flite processes run at once (default 2)"
    )
    args = parser.parse_args(argv)
    summary = build_corpus(
        args.out,
        num_utterances=args.num_utterances,
        test_voice=args.test_voice,
        seed=args.seed,
        jobs=args.jobs,
        voices=[v for v in args.voices.split(",") if v],
        real_voice=None if args.real_voice.lower() == "none" else Path(args.real_voice),
        real_voice_repeat=args.real_voice_repeat,
    )
    print_summary(args.out, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
