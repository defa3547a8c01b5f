"""Step time of the three trainers in fp32, bf16 autocast and under torch.compile, and their
model FLOP utilisation against the fp32 and bf16 matmul peaks measured in the same run.

Each setting runs the real trainer (`speechtok train speech|image`, `lm train`, the built-in
recipe's configs, 0 loader workers) for `--warmup` steps, then `--steps` timed steps, with an
evaluation every `--warmup` steps; the steady-state step time is the median over those
intervals of the training loop's own step clock (the first steps, which include compilation,
are left out, and so is an interval with a recompilation). Data: folders of synthetic clips and
images (benchmarks/synthetic_folders.py); the LM trains on their codes, encoded by the fp32
tokenizers trained here. FLOPs per step: a forward pass counted by torch.utils.flop_counter × 3
(the LM's: per token of a full block, times the tokens its steps trained on, padding not
counted).
Peaks: 2048² matmuls in fp32 and in bf16 (the bf16 one says whether the CPU has bf16 units).

    .venv/bin/python benchmarks/bench_precision.py [--work /tmp/speechtok-bench] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import torch
from synthetic_folders import audio_folder, image_folder
from timing import forward_flops, lm_step_flops, lm_tokens_per_step, matmul_peak

from lm.model import LMConfig
from lm.pretokenize import pretokenize
from lm.train import LMTrainConfig, train_lm
from speechtok import ImageTokenizerConfig, SpeechTokenizerConfig
from speechtok.image.train import ImageTrainConfig, train_image
from speechtok.speech.train import SpeechTrainConfig, train_speech
from speechtok.training.config import build_configs

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "builtin"
SETTINGS = {"fp32": ("no", False), "bf16": ("bf16", False), "fp32 + compile": ("no", True),
            "bf16 + compile": ("bf16", True)}


def steady_step_seconds(out: Path, warmup: int) -> float:
    """Seconds per step after the warm-up: the median over the intervals between evaluations
    (every `warmup` steps) of the loop's own step clock, from the history's cumulative steps/s.
    The median leaves out an interval with a recompilation (torch.compile recompiles once the
    batch shapes or the train/eval mode it was traced with change)."""
    hist = [h for h in json.loads((out / "train_history.json").read_text())
            if "steps_per_second" in h]
    if hist[0]["step"] != warmup or len(hist) < 2:
        raise RuntimeError(f"{out}: expected evaluations every {warmup} steps")
    spent = [h["step"] / h["steps_per_second"] for h in hist]
    return statistics.median((b - a) / (hb["step"] - ha["step"]) for a, b, ha, hb in
                             zip(spent, spent[1:], hist, hist[1:], strict=False))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "speechtok-bench"))
    p.add_argument("--steps", type=int, default=20,
                   help="timed steps per setting (a multiple of --warmup)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation)")
    p.add_argument("--settings", default=",".join(SETTINGS),
                   help=f"comma-separated, of: {', '.join(SETTINGS)}")
    args = p.parse_args(argv)
    work = Path(args.work)
    settings = args.settings.split(",")
    speech_dir = audio_folder(work / "precision_speech", 300)
    image_dir = image_folder(work / "precision_images", 300)
    runs = work / "precision_runs"
    shutil.rmtree(runs, ignore_errors=True)
    total = args.warmup + args.steps
    base = {"steps": total, "eval_every": args.warmup, "save_every": total, "num_workers": 0}
    peaks = {"fp32": matmul_peak(dtype=torch.float32), "bf16": matmul_peak(dtype=torch.bfloat16)}
    results: dict[tuple[str, str], float] = {}
    flops: dict[str, float] = {}
    for name in settings:
        mp, compiled = SETTINGS[name]
        over = {**base, "mixed_precision": mp, "compile": compiled}
        tag = name.replace(" + ", "_")
        m, c = build_configs([SpeechTokenizerConfig, SpeechTrainConfig],
                             RECIPE / "speech_tokenizer.yaml", {**over, "eval_max_items": 4})
        speech = train_speech(speech_dir, runs / f"speech_{tag}", m, c)
        results["speech tokenizer", name] = steady_step_seconds(runs / f"speech_{tag}",
                                                                args.warmup)
        if "speech tokenizer" not in flops:
            segment = int(c.segment_seconds * m.sample_rate) // m.total_stride * m.total_stride
            flops["speech tokenizer"] = 3 * forward_flops(speech.train(),
                                                          torch.randn(c.batch_size, segment))
        m, c = build_configs([ImageTokenizerConfig, ImageTrainConfig],
                             RECIPE / "image_tokenizer.yaml",
                             {**over, "eval_max_items": 8, "disc_start": total})
        image = train_image(image_dir, runs / f"image_{tag}", m, c)
        results["image tokenizer", name] = steady_step_seconds(runs / f"image_{tag}",
                                                               args.warmup)
        if "image tokenizer" not in flops:
            x = torch.randn(c.batch_size, 3, m.resolution, m.resolution)
            flops["image tokenizer"] = 3 * forward_flops(image.train(), x)
        codes = runs / "codes"
        if not codes.exists():  # the first setting's tokenizers encode the LM's data
            for kind, data in (("speech", speech_dir), ("image", image_dir)):
                pretokenize(kind, data, runs / f"{kind}_{tag}", codes / kind)
        m, c = build_configs([LMConfig, LMTrainConfig], RECIPE / "lm.yaml",
                             {**over, "speech_codes": str(codes / "speech"),
                              "image_codes": str(codes / "image"), "eval_batches": 1,
                              "warmup_steps": 2, "tensorboard": False})
        lm, _ = train_lm(runs / f"lm_{tag}", m, c)
        results["LM", name] = steady_step_seconds(runs / f"lm_{tag}", args.warmup)
        if "LM" not in flops:
            tokens = lm_tokens_per_step(runs / f"lm_{tag}" / "train_history.json")
            flops["LM"] = lm_step_flops(lm.train(), c.block_size, tokens)

    print(f"\ncores: {len(os.sched_getaffinity(0))}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; 2048² matmul peak: fp32 "
          f"{peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s; "
          f"{args.steps} timed steps after {args.warmup}\n")
    print("| model | setting | s/step | × fp32 speed | GFLOP/step | MFU vs fp32 peak | "
          "MFU vs bf16 peak |\n|---|---|---|---|---|---|---|")
    for model in ("speech tokenizer", "image tokenizer", "LM"):
        for name in settings:
            t = results[model, name]
            ref = results.get((model, "fp32"))
            speed = f"{ref / t:.2f}" if ref else "–"
            achieved = flops[model] / t
            print(f"| {model} | {name} | {t:.3f} | {speed} | {flops[model] / 1e9:.2f} | "
                  f"{achieved / peaks['fp32']:.1%} | {achieved / peaks['bf16']:.1%} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
