#!/usr/bin/env python
"""The built-in demo (`make demo`): everything offline, on the CPU, from nothing.

Data:     flite's English voices synthesise the corpus (recipes/builtin/make_speech_corpus.py);
          the voice `rms` and 300 sentences are held out.
Stages:   1. corpus  2. train the speech tokenizer  3. evaluate it on the held-out voice
          4. resynthesise held-out utterances and score their intelligibility with pocketsphinx
Command:  make demo        (or: python recipes/builtin/run_demo.py --out runs/demo)
Result:   see README.md ("Measured") for the figures; about 13 minutes on 2 CPU cores.

Each stage is skipped when its output already exists, so a rerun is fast; a killed training
stage resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing

from speechtok.audio_data import open_eval_source  # noqa: E402
from speechtok.audio_io import load_audio, save_audio  # noqa: E402
from speechtok.config_io import build_configs, parse_overrides  # noqa: E402
from speechtok.evaluate import evaluate_speech  # noqa: E402
from speechtok.model_card import write_model_card  # noqa: E402
from speechtok.speech import SpeechTokenizer, SpeechTokenizerConfig  # noqa: E402
from speechtok.train import SpeechTrainConfig, train_speech  # noqa: E402


def stage(name: str):
    print(f"\n=== {name} ===", flush=True)
    return time.time()


def make_corpus(out: Path, num_utterances: int) -> Path:
    data = out / "data" / "speech"
    if (data / "corpus.json").exists():
        print(f"corpus exists: {data}")
        return data
    cmd = [sys.executable, str(HERE / "make_speech_corpus.py"), "--out", str(data),
           "--num-utterances", str(num_utterances)]
    subprocess.run(cmd, check=True)
    return data


def train_tokenizer(data: Path, out: Path, config: Path, overrides: list[str]) -> Path:
    tok_dir = out / "speech_tokenizer"
    if (tok_dir / "model.safetensors").exists():
        print(f"speech tokenizer exists: {tok_dir}")
        return tok_dir
    model_cfg, train_cfg = build_configs([SpeechTokenizerConfig, SpeechTrainConfig], config,
                                         parse_overrides(overrides))
    train_speech(data, tok_dir, model_cfg, train_cfg, resume=True)
    return tok_dir


def resynthesise(tok: SpeechTokenizer, split: Path, out_dir: Path, n: int) -> list[dict]:
    rows = [json.loads(line) for line in (split / "metadata.jsonl").read_text().splitlines()][:n]
    out_dir.mkdir(parents=True, exist_ok=True)
    for row in rows:
        target = out_dir / row["file"]
        if not target.exists():
            units = tok.encode(load_audio(split / row["file"], tok.sample_rate)[None])
            save_audio(target, tok.decode(units)[0], tok.sample_rate)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--config", default=str(HERE / "speech_tokenizer.yaml"),
                   help="tokenizer + training config (YAML)")
    p.add_argument("--num-utterances", type=int, default=3000, help="corpus size")
    p.add_argument("--wer-utterances", type=int, default=100,
                   help="held-out utterances to resynthesise and score")
    args, overrides = p.parse_known_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    timings = {}

    t = stage("1/4 corpus: synthesising speech with flite")
    data = make_corpus(out, args.num_utterances)
    timings["corpus"] = time.time() - t

    t = stage("2/4 training the speech tokenizer")
    tok_dir = train_tokenizer(data, out, Path(args.config), overrides)
    timings["train"] = time.time() - t

    t = stage("3/4 evaluating on the held-out voice")
    tok = SpeechTokenizer.from_pretrained(str(tok_dir)).eval()
    eval_file = tok_dir / "eval_test.json"
    if eval_file.exists():
        metrics = json.loads(eval_file.read_text())
    else:
        test = open_eval_source(data, tok.sample_rate, "test")
        metrics = evaluate_speech(tok, test, progress=True)
        eval_file.write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    timings["eval"] = time.time() - t

    t = stage("4/4 resynthesis and intelligibility (pocketsphinx WER)")
    from speechtok.wer import transcribe, word_error_rate

    wer_file = out / "resynthesis" / "wer.json"
    if wer_file.exists():
        wer = json.loads(wer_file.read_text())
    else:
        rows = resynthesise(tok, data / "test", out / "resynthesis", args.wer_utterances)
        refs = [r["text"] for r in rows]
        hyp_resyn = transcribe([out / "resynthesis" / r["file"] for r in rows], jobs=2)
        hyp_orig = transcribe([data / "test" / r["file"] for r in rows], jobs=2)
        wer = {
            "utterances": len(rows),
            "wer_resynthesised": word_error_rate(refs, hyp_resyn),
            "wer_original": word_error_rate(refs, hyp_orig),
            "examples": [{"text": r, "original": o, "resynthesised": h}
                         for r, o, h in list(zip(refs, hyp_orig, hyp_resyn, strict=True))[:10]],
        }
        wer_file.write_text(json.dumps(wer, indent=2))
    print(json.dumps({k: v for k, v in wer.items() if k != "examples"}, indent=2))
    timings["wer"] = time.time() - t

    summary = {**metrics, "wer_resynthesised": wer["wer_resynthesised"],
               "wer_original": wer["wer_original"]}
    write_model_card(tok_dir, tok.config.to_dict(), summary)
    report = out / "report.md"
    lines = ["# Demo report", "", "Speech tokenizer on the held-out voice (`rms`, unseen "
             "sentences).", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in summary.items() if isinstance(v, (int, float))]
    lines += ["", "Resynthesised examples (reference / recognised from original / from "
              "resynthesis):", ""]
    lines += [f"- {e['text']} / {e['original']} / {e['resynthesised']}" for e in wer["examples"]]
    lines += ["", "Stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())]
    report.write_text("\n".join(lines) + "\n")
    print(f"\ndemo finished in {time.time() - t_all:.0f} s; report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
