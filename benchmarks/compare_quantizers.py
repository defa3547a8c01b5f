"""Every quantizer of speechtok.quantization in the same image tokenizer, at comparable bits,
on the held-out glyphs and photographs: which one should I use?

For each dataset the tokenizer of its recipe (recipes/builtin/image_tokenizer.yaml for the
glyphs, recipes/photos/image_tokenizer.yaml for the photos) is trained with each quantizer for
the same number of steps (--steps; fewer than the recipes', so that sixteen runs fit in about
40 minutes on 2 cores), then scored on the test split: PSNR, SSIM, codebook usage, perplexity,
the bits a grid position carries (log2 of the codes a position can take, summed over residual
stages), the tokens an image costs an LM, and the training time. Usage and perplexity are
those of the first residual stage, and over both grids of a hierarchy. The quantizers get
about the same bits a position: 8 on the glyphs and 10 on the photos (FSQ 8×6×5 = 240 codes
≈ 7.9 bits and 8×5×5×5 = 1,000 ≈ 10 bits; the residual kinds spread them over 2 stages; the
two-grid hierarchy adds a coarse grid, a quarter more tokens).

    python benchmarks/compare_quantizers.py --glyphs runs/demo2/data/images \
        --photos runs/photos/data --out runs/quantizers       # prints the table, writes JSON
    python benchmarks/compare_quantizers.py --glyphs ... --only fsq,lfq --steps 50   # a check

Runs are cached in OUT/<dataset>/<quantizer>/ (delete one to retrain it). Train times are
wall-clock on this machine: run nothing else beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {"glyphs": ROOT / "recipes/builtin/image_tokenizer.yaml",
           "photos": ROOT / "recipes/photos/image_tokenizer.yaml"}


def variants(bits: int) -> dict[str, dict]:
    """Quantizer overrides at about `bits` bits per grid position (8 or 10)."""
    k = 2 ** bits
    half = 2 ** (bits // 2)  # per residual stage
    fsq = [8, 6, 5] if bits == 8 else [8, 5, 5, 5]
    rfsq = [4, 4] if bits == 8 else [8, 4]
    vq = {"codebook_size": k, "codebook_dim": 8}
    return {
        "vq": {"quantizer": "vq", **vq},  # EMA, k-means init, dead-code restarts, l2 lookup
        "simvq": {"quantizer": "vq", **vq, "simvq": True, "ema_decay": None,
                  "rotation_trick": True},
        "rvq": {"quantizer": "rvq", "codebook_size": half, "codebook_dim": 8, "rvq_depth": 2,
                "l2_normalize": False},
        "fsq": {"quantizer": "fsq", "fsq_levels": fsq},
        "rfsq": {"quantizer": "rfsq", "fsq_levels": rfsq, "rvq_depth": 2},
        "lfq": {"quantizer": "lfq", "codebook_size": k},
        "bsq": {"quantizer": "bsq", "codebook_size": k},
        "gumbel": {"quantizer": "gumbel", "codebook_size": k},
        # VQ-VAE-2's two grids (speechtok.image.hierarchy): FSQ codes, a quarter more of them
        "fsq-2grid": {"quantizer": "fsq", "fsq_levels": fsq, "hierarchy": 2},
    }


def run_one(data: Path, config: Path, overrides: dict, steps: int, out: Path) -> dict:
    from speechtok.image import ImageTokenizer, ImageTokenizerConfig
    from speechtok.image.data import open_image_eval_source
    from speechtok.image.evaluate import evaluate_image
    from speechtok.image.train import ImageTrainConfig, train_image
    from speechtok.training.config import build_configs

    result_file = out / "comparison.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    fields = {**overrides, "steps": steps, "disc_start": steps, "eval_every": steps,
              "save_every": steps, "max_minutes": 0}
    model_cfg, train_cfg = build_configs([ImageTokenizerConfig, ImageTrainConfig], config,
                                         fields)
    t0 = time.time()
    train_image(data, out, model_cfg, train_cfg, resume=False)
    seconds = time.time() - t0
    tok = ImageTokenizer.from_pretrained(str(out)).eval()
    metrics = evaluate_image(tok, open_image_eval_source(data, tok.config.resolution, "test"))
    c = tok.config
    result = {"psnr": round(metrics["psnr"], 2), "ssim": round(metrics["ssim"], 3),
              "usage": round(metrics["codebook_usage"], 3),
              "perplexity": round(metrics["perplexity"], 1),
              "bits_per_position": round(math.log2(c.codebook_size) * c.code_depth, 2),
              "tokens_per_image": c.tokens_per_image * c.code_depth,
              "train_seconds": round(seconds, 1), "steps": steps, "test_items": metrics["items"],
              "overrides": overrides}
    result_file.write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glyphs", type=Path, default=None, help="glyph corpus (split folders)")
    parser.add_argument("--photos", type=Path, default=None, help="photo folders (split)")
    parser.add_argument("--out", type=Path, required=True, help="folder of the runs and JSON")
    parser.add_argument("--steps", type=int, default=300, help="training steps of every run")
    parser.add_argument("--only", default="", help="comma-separated subset of quantizers")
    args = parser.parse_args()
    datasets = [(name, path, 8 if name == "glyphs" else 10)
                for name, path in (("glyphs", args.glyphs), ("photos", args.photos)) if path]
    if not datasets:
        parser.error("give --glyphs and/or --photos")
    table = {}
    for name, path, bits in datasets:
        table[name] = {}
        for quantizer, overrides in variants(bits).items():
            if args.only and quantizer not in args.only.split(","):
                continue
            print(f"== {name}: {quantizer}", flush=True)
            table[name][quantizer] = run_one(path, CONFIGS[name], overrides, args.steps,
                                             args.out / name / quantizer)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.json").write_text(json.dumps(table, indent=1))
    for name, rows in table.items():
        print(f"\n{name} (test split), {args.steps} steps each")
        print(f"{'quantizer':<10}{'bits':>6}{'tokens':>7}{'PSNR dB':>9}{'SSIM':>7}{'usage':>7}"
              f"{'perplexity':>11}{'train s':>9}")
        for q, r in rows.items():
            print(f"{q:<10}{r['bits_per_position']:>6}{r['tokens_per_image']:>7}"
                  f"{r['psnr']:>9.2f}{r['ssim']:>7.3f}{r['usage']:>7.3f}"
                  f"{r['perplexity']:>11.1f}{r['train_seconds']:>9.0f}")


if __name__ == "__main__":
    main()
