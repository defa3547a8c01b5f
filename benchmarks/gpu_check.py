"""GPU check: train each of the three models for a few hundred steps and print one table.

For each model (speech tokenizer, image tokenizer, LM): steps/s, samples or tokens per second,
peak accelerator memory, model FLOP utilisation (MFU) and the share of the step spent waiting
for the data loader. Everything it needs is made here: folders of synthetic speech-like clips
and images (benchmarks/synthetic_folders.py), the two tokenizers trained on them, their codes
(`lm tokenize`, on the device), then the LM on those codes.

MFU = model FLOPs per step × steps/s ÷ peak. Model FLOPs per step: the forward pass of one
training batch counted by torch.utils.flop_counter (matmuls, convolutions, attention) × 3
(backward ≈ 2× forward; Kaplan et al. 2020), so losses outside the model (the speech
tokenizer's mel loss) are not counted; the LM's per token of a full block, times the tokens
its steps trained on (packed blocks; padding not counted). The peak is measured in the same
run: the median of timed square matmuls (8192² bf16 on CUDA; 2048² fp32 on a CPU, the
precision the CPU path trains in), so MFU is against what this chip delivers on a large matmul,
not its datasheet.

On CUDA the models train in bf16 (mixed_precision auto) with 2 loader workers; the models are
the demo's tokenizers at batch `--batch-size` and an LM widened to `--lm-hidden-size`. On a CPU
the same path runs (fp32, the demo's sizes) so that the script is tested without a GPU:

    bash benchmarks/gpu_check.sh [--steps 300] [--work /tmp/gpu_check]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
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

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "builtin"


def peak(device: str) -> tuple[float, str]:
    """(FLOP/s, what was timed): square matmuls in the precision the models train in."""
    n, dtype = (8192, torch.bfloat16) if device == "cuda" else (2048, torch.float32)
    return matmul_peak(device, dtype, n), f"{n}² {str(dtype).removeprefix('torch.')} matmul"


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gb(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def last_timing(out: Path) -> dict:
    return json.loads((out / "train_history.json").read_text())[-1]


def row(name: str, steps: int, timing: dict, per_step: float, unit: str, flops_per_step: float,
        peak: float, device: str, seconds: float) -> dict:
    sps, memory = timing["steps_per_second"], peak_memory_gb(device)
    return {"model": name, "steps": steps, "steps/s": round(sps, 2),
            "throughput": f"{sps * per_step:,.0f} {unit}/s",
            "peak memory (GiB)": "n/a (CPU)" if memory is None else round(memory, 2),
            "MFU": f"{flops_per_step * sps / peak:.1%}",
            "waiting for data": f"{timing['data_wait']:.1%}", "wall (s)": round(seconds)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "gpu_check"),
                   help="data folders and runs go here (the data is made once and reused)")
    p.add_argument("--steps", type=int, default=300, help="training steps of each model")
    p.add_argument("--files", type=int, default=2000, help="audio files and images to make")
    p.add_argument("--batch-size", type=int, default=None,
                   help="tokenizer batch (default: 64 on CUDA, the demo's 16 on a CPU)")
    p.add_argument("--lm-hidden-size", type=int, default=None,
                   help="LM width (default: 768 on CUDA, the demo's 128 on a CPU)")
    p.add_argument("--num-workers", type=int, default=2, help="loader workers per trainer")
    p.add_argument("--out", default=None, help="also write the table as JSON here")
    args = p.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = device == "cuda"
    work = Path(args.work)
    batch = args.batch_size or (64 if gpu else 16)
    hidden = args.lm_hidden_size or (768 if gpu else 128)
    steps = args.steps
    print(f"device: {torch.cuda.get_device_name() if gpu else 'CPU'}, torch {torch.__version__}")
    peak_flops, peak_what = peak(device)
    print(f"peak: {peak_flops / 1e12:.2f} TFLOP/s ({peak_what})\n", flush=True)
    speech_data = audio_folder(work / f"speech{args.files}", args.files)
    image_data = image_folder(work / f"image{args.files}", args.files)
    runs = work / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    common = {"steps": steps, "eval_every": steps, "save_every": steps,
              "num_workers": args.num_workers}
    rows = []

    # speech tokenizer
    model_cfg, cfg = build_configs([SpeechTokenizerConfig, SpeechTrainConfig],
                                   RECIPE / "speech_tokenizer.yaml",
                                   {**common, "batch_size": batch, "eval_max_items": 16})
    reset_peak(device)
    t0 = time.time()
    speech = train_speech(speech_data, runs / "speech", model_cfg, cfg)
    seconds = time.time() - t0
    segment = int(cfg.segment_seconds * model_cfg.sample_rate)
    segment -= segment % model_cfg.total_stride
    wav = torch.randn(batch, segment, device=speech.device) * 0.1
    flops = 3 * forward_flops(speech.train(), wav)
    rows.append(row("speech tokenizer", steps, last_timing(runs / "speech"), batch * segment /
                    model_cfg.sample_rate, "s of audio", flops, peak_flops, device, seconds))
    print(rows[-1], flush=True)

    # image tokenizer (the demo's: the GAN off)
    model_cfg, cfg = build_configs([ImageTokenizerConfig, ImageTrainConfig],
                                   RECIPE / "image_tokenizer.yaml",
                                   {**common, "batch_size": batch, "disc_start": steps,
                                    "eval_max_items": 32})
    reset_peak(device)
    t0 = time.time()
    image = train_image(image_data, runs / "image", model_cfg, cfg)
    seconds = time.time() - t0
    x = torch.randn(batch, 3, model_cfg.resolution, model_cfg.resolution, device=image.device)
    flops = 3 * forward_flops(image.train(), x)
    rows.append(row("image tokenizer", steps, last_timing(runs / "image"), batch, "images",
                    flops, peak_flops, device, seconds))
    print(rows[-1], flush=True)

    # codes on the device, then the LM
    codes = {}
    for kind, data in (("speech", speech_data), ("image", image_data)):
        t0 = time.time()
        pretokenize(kind, data, runs / kind, runs / f"{kind}_codes", device=device,
                    num_workers=args.num_workers)
        codes[kind] = runs / f"{kind}_codes"
        print(f"lm tokenize {kind}: {args.files} files in {time.time() - t0:.1f} s", flush=True)
    model_cfg, cfg = build_configs(
        [LMConfig, LMTrainConfig], RECIPE / "lm.yaml",
        {**common, "speech_codes": str(codes["speech"]), "image_codes": str(codes["image"]),
         "hidden_size": hidden, "intermediate_size": hidden * 11 // 4,
         "num_heads": max(4, hidden // 64), "num_kv_heads": max(4, hidden // 64),
         "num_layers": 12 if gpu else 4, "samples_per_step": 64 if gpu else 16,
         "warmup_steps": min(50, steps // 4), "eval_batches": 2, "tensorboard": False})
    reset_peak(device)
    t0 = time.time()
    lm, _ = train_lm(runs / "lm", model_cfg, cfg)
    seconds = time.time() - t0
    tokens = lm_tokens_per_step(runs / "lm" / "train_history.json")
    flops = lm_step_flops(lm.train(), cfg.block_size, tokens)
    rows.append(row("LM", steps, last_timing(runs / "lm"), tokens, "tokens", flops,
                    peak_flops, device, seconds))
    print(rows[-1], flush=True)

    keys = list(rows[0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    print(f"\nMFU against {peak_flops / 1e12:.2f} TFLOP/s ({peak_what}, measured in this run)")
    if args.out:
        Path(args.out).write_text(json.dumps({"device": device, "peak_flops": peak_flops,
                                              "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
