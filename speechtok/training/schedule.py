"""The learning-rate schedule of every trainer: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math


def warmup_cosine(steps: int, warmup_steps: int, min_lr_ratio: float):
    """LambdaLR factor of step s: (s + 1) / warmup during warm-up, then a half cosine from 1 to
    `min_lr_ratio` at `steps` (SGDR, Loshchilov & Hutter 2017, without restarts)."""
    def fn(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, steps - warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return min_lr_ratio + (1 - min_lr_ratio) * cosine
    return fn


def lr_lambda(cfg):
    """`warmup_cosine` with a trainer config's steps, warmup_steps and min_lr_ratio."""
    return warmup_cosine(cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
