#!/usr/bin/env python
"""Your own voice: a speech tokenizer (and its learned decoder) for a folder of your recordings.

Data:     a folder of recordings (wav, flac, ogg, mp3, ...; any rate, mono or stereo; searched
          recursively) with a `metadata.jsonl` of {"file_name": path relative to the folder,
          "text": what is said} rows, one per recording. Digits and punctuation in the text are
          fine (the scorer spells numbers out). Twenty minutes of speech is enough to see the
          figures move; the shipped example is recipes/builtin/data/real_speech_en_female.
Stages:   1. split by sentence: about 15 % of the recordings for test and 8 % for valid,
             every recording of one sentence in the same split, converted to 16 kHz mono FLAC
             in OUT/data/{train,valid,test}
          2. train the speech tokenizer from scratch (speech_tokenizer.yaml), or fine-tune the
             one given with --tokenizer (its architecture, from its config.json; its weights
             and feature statistics as the start)                      → OUT/speech_tokenizer
          3. train its learned decoder on the frozen tokenizer (--vocoder-steps; 0 = none)
                                                                      → OUT/speech_tokenizer/vocoder
          4. evaluate on the held-out sentences: code use and bitrate; unit agreement under
             10 dB noise, reverberation and the 8 kHz band; STOI, ESTOI, PESQ and MCD of the
             resynthesis (each file in its own voice) with Griffin-Lim and the learned decoder;
             pocketsphinx WER of the originals and of both resyntheses (OUT/resynthesis/)
Command:  python recipes/own_voice/run.py --data my_recordings/ --out runs/own_voice
          python recipes/own_voice/run.py --data my_recordings/ \
              --tokenizer runs/demo/speech_tokenizer     (fine-tune the demo's)
Result:   OUT/results.json (every figure and the stage times); listen to OUT/resynthesis/.
          The shipped real voice's figures are in docs/RESULTS.md.
Time:     for 20 minutes of speech on 2 CPU cores (AMD EPYC): the tokenizer's 800 steps about
          7 min, the decoder's 1,500 steps about 18 min (--vocoder-steps 0 skips it: at CPU
          budgets it matches Griffin-Lim, docs/EXPERIMENTS.md), the evaluation 2-3 min.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from recipes import common, layouts

HERE = Path(__file__).resolve().parent
MODELS = ("speech", "vocoder")
SHARES = {"test": 0.15, "valid": 0.08}
SAMPLE_RATE = 16000


def read_recordings(folder: Path) -> list[dict]:
    """The metadata rows of `folder`, each checked: a file that exists and a text."""
    meta = folder / "metadata.jsonl"
    if not folder.is_dir():
        raise FileNotFoundError(f"--data {folder}: no such folder")
    if not meta.exists():
        raise FileNotFoundError(f"{meta} not found: the recipe needs a transcript per "
                                'recording, as {"file_name": "a.wav", "text": "..."} lines')
    rows = []
    for n, line in enumerate(meta.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not row.get("file_name") or not str(row.get("text", "")).strip():
            raise ValueError(f"{meta}:{n}: needs 'file_name' and a non-empty 'text'")
        if not (folder / row["file_name"]).is_file():
            raise FileNotFoundError(f"{meta}:{n}: {folder / row['file_name']} not found")
        rows.append(row)
    return rows


def split_recordings(folder: Path, seed: int, max_samples: int | None):
    """{split: [layouts.Example]} by sentence (speechtok.splits.split_by_sentence)."""
    from speechtok.splits import split_by_sentence

    parts = split_by_sentence(read_recordings(folder), SHARES, seed)
    out = {}
    for split, rows in parts.items():
        rows = layouts.take(rows, max_samples)
        out[split] = [layouts.Example(Path(r["file_name"]).with_suffix("").as_posix()
                                      .replace("/", "__"), folder / r["file_name"], r["text"])
                      for r in rows]
    return out


def score(tok_dir: Path, data: Path, out: Path, items: int, asr: bool) -> dict:
    """Every held-out figure of stage 4 (see the module docstring)."""
    from speechtok.speech import SpeechTokenizer
    from speechtok.speech.data import open_eval_source
    from speechtok.speech.evaluate import evaluate_speech, evaluate_unit_agreement

    tok = SpeechTokenizer.from_pretrained(str(tok_dir)).eval()
    test = open_eval_source(data, tok.sample_rate, "test")
    return {"tokenizer": evaluate_speech(tok, test, progress=True),
            "unit_agreement": evaluate_unit_agreement(tok, test, items, progress=True),
            "resynthesis": common.resynthesis_scores(tok, test, items, out, asr)}


def main(argv: list[str] | None = None) -> int:
    p = common.recipe_parser(__doc__, HERE, ("speech",), "a folder of your recordings with a "
                             "metadata.jsonl of file_name and text")
    p.epilog = p.epilog.replace("--speech.steps", "--speech|vocoder.steps")
    p.add_argument("--tokenizer", default=None,
                   help="fine-tune this saved speech tokenizer instead of training from scratch")
    p.add_argument("--vocoder-steps", type=int, default=1500,
                   help="steps of the learned decoder (0 = Griffin-Lim only; default 1500)")
    p.add_argument("--eval-items", type=int, default=60,
                   help="held-out recordings to resynthesise and score (default 60)")
    p.add_argument("--no-asr", action="store_true",
                   help="skip the pocketsphinx WER (it needs the Debian pocketsphinx packages)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sentence split")
    run = common.RecipeRun(p, argv, MODELS, stages=4)
    args, out = run.args, run.out
    with run.stage("splitting by sentence into train / valid / test"):
        data = out / "data"
        run.results["data"] = layouts.write_audio_folder(
            data, lambda: split_recordings(Path(args.data), args.seed, args.max_samples),
            SAMPLE_RATE, {"data": str(args.data), "seed": args.seed,
                          "max_samples": args.max_samples})["items"]
    overrides = dict(run.overrides["speech"])
    if args.tokenizer:  # fine-tune: the given tokenizer's architecture and weights; the
        # training settings stay the YAML's
        architecture = json.loads((Path(args.tokenizer) / "config.json").read_text())
        overrides = {**{k: v if isinstance(v, str) else json.dumps(v)
                        for k, v in architecture.items()},
                     "init_from": str(args.tokenizer), **overrides}
    with run.stage("training the speech tokenizer" + (" (fine-tuning)" if args.tokenizer
                                                       else "")):
        tok_dir = common.train_tokenizer("speech", data, out / "speech_tokenizer",
                                         Path(args.speech_config), overrides)
    with run.stage("training the learned decoder on the frozen tokenizer"):
        if args.vocoder_steps > 0:
            common.train_vocoder_once(tok_dir, data, None, {
                "steps": str(args.vocoder_steps), **run.overrides["vocoder"]})
    with run.stage("held-out figures: units, resynthesis quality, WER"):
        results = common.cached_json(out / "eval_test.json", lambda: score(
            tok_dir, data, out / "resynthesis", args.eval_items,
            common.pocketsphinx_available(not args.no_asr)))
        run.results.update(results)
        print(json.dumps(results, indent=1))
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
