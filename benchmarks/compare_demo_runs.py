"""Two or more `make demo` run folders side by side: each model's final training loss and the
demo's figures (held-out data), e.g. fp32 against bf16:

    .venv/bin/python recipes/builtin/run_demo.py --out runs/demo-bf16 \\
        --speech.mixed_precision bf16 --image.mixed_precision bf16 --lm.mixed_precision bf16
    .venv/bin/python benchmarks/compare_demo_runs.py runs/demo runs/demo-bf16
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# (label, file in the run folder, key): "last:K" is K of the last history entry (the losses:
# the last training step's, as logged); "a.b" is a nested key
FIGURES = [
    ("speech tokenizer: train loss", "speech_tokenizer/train_history.json", "last:train/loss"),
    ("image tokenizer: train loss", "image_tokenizer/train_history.json", "last:train/loss"),
    ("LM: train loss", "bundle/train_history.json", "last:train/loss"),
    ("LM: held-out loss, text", "bundle/train_history.json", "last:eval/loss/text"),
    ("LM: held-out loss, audio", "bundle/train_history.json", "last:eval/loss/audio"),
    ("LM: held-out loss, image", "bundle/train_history.json", "last:eval/loss/image"),
    ("speech codes used, held-out voice", "speech_tokenizer/eval_test.json", "codebook_usage"),
    ("PNMI, held-out voice", "speech_tokenizer/eval_test.json", "pnmi"),
    ("resynthesis WER (held-out flite voice), Griffin-Lim", "resynthesis/test/scores.json",
     "griffin_lim.wer"),
    ("resynthesis WER (held-out flite voice), learned decoder", "resynthesis/test/scores.json",
     "learned.wer"),
    ("originals' WER (held-out flite voice)", "resynthesis/test/scores.json", "original.wer"),
    ("resynthesis WER (real voice), Griffin-Lim", "resynthesis/test_real/scores.json",
     "griffin_lim.wer"),
    ("resynthesis WER (real voice), learned decoder", "resynthesis/test_real/scores.json",
     "learned.wer"),
    ("originals' WER (real voice)", "resynthesis/test_real/scores.json", "original.wer"),
    ("STOI (real voice), Griffin-Lim", "resynthesis/test_real/scores.json",
     "griffin_lim.stoi"),
    ("STOI (real voice), learned decoder", "resynthesis/test_real/scores.json", "learned.stoi"),
    ("PESQ (real voice), Griffin-Lim", "resynthesis/test_real/scores.json",
     "griffin_lim.pesq_wb"),
    ("PESQ (real voice), learned decoder", "resynthesis/test_real/scores.json",
     "learned.pesq_wb"),
    ("unit agreement at 10 dB SNR (real voice)", "speech_tokenizer/eval_test_real.json",
     "unit_agreement_noise_10db"),
    ("image PSNR, held-out fonts (dB)", "image_tokenizer/eval_test.json", "psnr"),
    ("image SSIM", "image_tokenizer/eval_test.json", "ssim"),
    ("glyph score, test captions", "generation/images.json", "test_accuracy_at_default"),
    ("LM NLL per unit, held-out speech (nats)", "generation/speech.json",
     "heldout_speech.nll_per_unit"),
]


def figure(run: Path, file: str, key: str):
    path = run / file
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if key.startswith("last:"):
        return data[-1].get(key[5:]) if data else None
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="demo run folders (runs/demo, ...)")
    args = p.parse_args(argv)
    runs = [Path(r) for r in args.runs]
    for r in runs:
        if not r.is_dir():
            p.error(f"not a folder: {r}")
    print("| figure | " + " | ".join(r.name for r in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for label, file, key in FIGURES:
        values = [figure(r, file, key) for r in runs]
        if all(v is None for v in values):
            continue
        cells = ["–" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
                 for v in values]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
