#!/usr/bin/env python
"""LJSpeech: a single-speaker speech tokenizer tuned for resynthesis quality.

One voice means the units need not be speaker-invariant and the decoder need not be told the
voice, so the budget goes to reconstruction instead: a larger codebook, wider encoder and
decoder, no vocal-tract-length perturbation, more Griffin-Lim iterations (speech_tokenizer.yaml
says why for each). This is the tokenizer to use when the speech must sound good, e.g. as the
vocoder side of a single-voice TTS-like LM.

Data:     LJSpeech 1.1 (Ito & Johnson 2017): 13,100 clips (24 h) of one reader, 22.05 kHz,
          https://keithito.com/LJ-Speech-Dataset/ (LJSpeech-1.1.tar.bz2, 2.6 GB), which
          unpacks to LJSpeech-1.1/wavs/LJ001-0001.wav ... and metadata.csv, one line per clip:
          id|transcript|normalised transcript. Or a `datasets` copy saved with save_to_disk
          (an "audio" column; "normalized_text" or "text"), or the Hub name keithito/lj_speech
          (needs internet).
Stages:   1. LJSpeech → an audio folder at the tokenizer's 16 kHz (resampled by
             speechtok.speech.io), text = the normalised transcript; LJSpeech has no official
             split, so --valid-fraction and --test-fraction of the clips are held out (seeded)
          2. train the speech tokenizer (speech_tokenizer.yaml)          → OUT/speech_tokenizer
          3. evaluate it on the test clips: codebook use, perplexity, bitrate, spectral and
             mel distance of the reconstruction
          4. resynthesise --wer-utterances test clips (OUT/resynthesis/*.wav) and, when
             pocketsphinx is installed, the WER of what it hears in the originals and in the
             resynthesised clips (intelligibility, as GSLM scores resynthesis with ASR)
Command:  python recipes/ljspeech/run.py --data /data/LJSpeech-1.1 --out runs/ljspeech
Result:   not measured here: there is no LJSpeech on this machine (no internet). In
          OUT/results.json look for: mel_l1 lower than the built-in demo's
          multi-speaker tokenizer reaches; codebook usage near 100 %; wer_resynthesised close
          to wer_original (the demo's multi-speaker tokenizer: 0.36 against 0.10 on flite
          voices; Griffin-Lim of the true spectrogram, the ceiling, gave 0.17). Listen to
          OUT/resynthesis beside the originals.
Time:     not run here; the config is sized for a GPU, not for this machine's 2 CPU cores.
          The two-step smoke run in tests/test_recipes.py (a fake LJSpeech folder, a tiny
          model) takes a few seconds here.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from recipes import common, layouts

HERE = Path(__file__).resolve().parent

MODELS = ("speech",)
DATA_HELP = ("the unpacked LJSpeech-1.1 folder (wavs/ + metadata.csv), a save_to_disk copy, or "
             "the Hub name keithito/lj_speech")


def ljspeech_examples(root: Path, max_samples: int | None) -> list[layouts.Example]:
    """Clips listed in metadata.csv (`id|transcript|normalised transcript`, no header, no
    quoting: transcripts contain quote marks)."""
    meta = root / "metadata.csv"
    if not meta.exists():
        raise FileNotFoundError(f"{meta} not found: --data must be the LJSpeech-1.1 folder "
                                "(wavs/ and metadata.csv)")
    out = []
    with open(meta, newline="", encoding="utf-8") as fh:
        for n, fields in enumerate(csv.reader(fh, delimiter="|", quoting=csv.QUOTE_NONE), 1):
            if not fields:
                continue
            if len(fields) < 2:
                raise ValueError(f"{meta}:{n}: expected id|text|normalised text, got "
                                 f"{'|'.join(fields)[:60]!r}")
            wav = root / "wavs" / f"{fields[0]}.wav"
            if not wav.exists():
                raise FileNotFoundError(f"{wav} (listed in {meta}:{n}) is missing")
            text = fields[2] if len(fields) > 2 and fields[2] else fields[1]
            out.append(layouts.Example(fields[0], wav, text))
    return out


def ljspeech_splits(args) -> dict[str, list[layouts.Example]]:
    from speechtok.splits import hold_out

    source = layouts.open_source(args.data)
    if source is None:
        clips = ljspeech_examples(Path(args.data).expanduser(), None)
    else:
        def row_example(i: int, row: dict, media) -> layouts.Example:
            text = row.get("normalized_text") or row.get("text") or ""
            return layouts.Example(str(row.get("id") or f"row{i:05d}"), media, str(text))

        ds = source["train"] if hasattr(source, "keys") else source
        clips = layouts.dataset_examples(ds, "audio", "audio", None, row_example)
    rest, test = hold_out(clips, args.test_fraction, 0, "LJSpeech (test clips)")
    train, valid = hold_out(rest, args.valid_fraction, 1, "LJSpeech (valid clips)")
    return {split: layouts.take(items, args.max_samples)
            for split, items in (("train", train), ("valid", valid), ("test", test))}


def resynthesis(tok_dir: Path, data: Path, out: Path, n: int, transcribe: bool) -> dict:
    from speechtok.metrics.wer import transcribe as asr
    from speechtok.metrics.wer import word_error_rate
    from speechtok.speech import SpeechTokenizer

    tok = SpeechTokenizer.from_pretrained(str(tok_dir)).eval()
    rows = common.resynthesise(tok, data / "test", out, n)
    result = {"utterances": len(rows), "files": [r["file"] for r in rows]}
    if transcribe:
        refs = [r["text"] for r in rows]
        resynthesised = asr([out / r["file"] for r in rows], jobs=2)
        original = asr([data / "test" / r["file"] for r in rows], jobs=2)
        result.update(wer_original=round(word_error_rate(refs, original), 4),
                      wer_resynthesised=round(word_error_rate(refs, resynthesised), 4))
    return result


def main(argv: list[str] | None = None) -> int:
    p = common.recipe_parser(__doc__, HERE, MODELS, DATA_HELP)
    p.add_argument("--valid-fraction", type=float, default=0.01, help="clips held out for "
                   "validation (default 0.01: 131)")
    p.add_argument("--test-fraction", type=float, default=0.02, help="clips held out for the "
                   "figures (default 0.02: 262)")
    p.add_argument("--eval-utterances", type=int, default=None,
                   help="test clips for the tokenizer's figures (default: all)")
    p.add_argument("--wer-utterances", type=int, default=100,
                   help="test clips to resynthesise and score (default 100)")
    p.add_argument("--transcribe", action=argparse.BooleanOptionalAction, default=True,
                   help="score intelligibility with pocketsphinx when installed")
    run = common.RecipeRun(p, argv, MODELS, stages=4)
    args, out = run.args, run.out
    speech_cfg = common.model_configs("speech", args.speech_config, run.overrides["speech"])[0]

    with run.stage("LJSpeech → audio folder"):
        data = out / "data"
        run.results["data"] = layouts.write_audio_folder(
            data, lambda: ljspeech_splits(args), speech_cfg.sample_rate,
            {"source": str(args.data), "valid_fraction": args.valid_fraction,
             "test_fraction": args.test_fraction, "max_samples": args.max_samples})
    tok_dir = run.tokenizer("speech", data, "the test clips", args.eval_utterances)
    with run.stage("resynthesis and intelligibility"):
        run.results["resynthesis"] = common.cached_json(
            out / "resynthesis" / "resynthesis.json", lambda: resynthesis(
                tok_dir, data, out / "resynthesis", args.wer_utterances,
                common.pocketsphinx_available(args.transcribe)))
    print(json.dumps(run.results["resynthesis"], indent=1))
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
