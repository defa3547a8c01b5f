"""Held-out evaluation of an image tokenizer: PSNR, SSIM, codebook use, reconstruction grid."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from tqdm.auto import tqdm

from speechtok.image.data import ImageSource
from speechtok.image.io import image_grid
from speechtok.metrics import codebook_usage, entropy_bits, perplexity
from speechtok.metrics.image import psnr, ssim


@torch.no_grad()
def evaluate_image(model, source: ImageSource, max_items: int | None = None,
                   batch_size: int = 128, progress: bool = False) -> dict[str, float]:
    """Metrics of `model` over (up to `max_items` of) `source`, as a flat dict of floats.
    PSNR and SSIM are computed per image on [0, 1] pixels, then averaged."""
    was_training = model.training
    model.eval()
    n = len(source) if max_items is None else min(len(source), max_items)
    psnrs, ssims, codes = [], [], []
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc="evaluate"):
        x = source.load(range(start, min(n, start + batch_size))).to(model.device)
        grid = model.encode(x)
        if getattr(model, "decodes", True):  # Chameleon's VQ: codes only
            y = model.decode(grid)
            psnrs.append(psnr(y, x).cpu())
            ssims.append(ssim(y, x).cpu())
        first = grid[:, 0] if grid.dim() == 4 else grid  # RVQ: usage of the first codebook
        codes.append(first.flatten().cpu())
    model.train(was_training)
    all_codes = torch.cat(codes).numpy()
    layout = model.layout
    K, depth, positions = layout.codebook_size, layout.depth, layout.positions_per_item
    return {
        "items": n,
        **({"psnr": float(torch.cat(psnrs).mean()), "ssim": float(torch.cat(ssims).mean())}
           if psnrs else {}),
        "codebook_usage": codebook_usage(all_codes, K),
        "perplexity": perplexity(all_codes, K),
        "entropy_bits": entropy_bits(all_codes, K),
        "tokens_per_image": positions * depth,
        "bits_per_image": positions * depth * math.log2(K),
    }


@torch.no_grad()
def save_reconstruction_grid(model, source: ImageSource, path: str | Path, n: int = 16,
                             rows: int = 2) -> Path:
    """PNG of `rows` pairs of rows: originals above their reconstructions, for images spread
    evenly over `source` (so a split sorted by font shows several fonts)."""
    count = min(len(source), n * rows)
    picks = torch.linspace(0, len(source) - 1, count).round().long()
    x = source.load(picks).to(model.device)
    was_training = model.training
    y = model.eval().decode(model.encode(x))
    model.train(was_training)
    pairs = []
    for r in range(0, count, n):
        pairs += [x[r:r + n], y[r:r + n]]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(pairs).save(path)
    return path
