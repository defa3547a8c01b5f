"""The learning-rate schedules of every trainer, by name (`lr_schedule` in the config):

  cosine  linear warm-up, then a half cosine from the peak to `min_lr_ratio` × peak at the last
          step (SGDR, Loshchilov & Hutter 2017, without restarts)
  wsd     warmup-stable-decay: linear warm-up, the peak held, then a linear decay to
          `min_lr_ratio` × peak over the last `decay_fraction` of the steps (MiniCPM, Hu et al.
          2024; Hägele et al. 2024 found it matches cosine at the same length and keeps the
          rate high for longer, which short runs lack)
"""

from __future__ import annotations

import math
from collections.abc import Callable

Schedule = Callable[[int], float]


def warmup_cosine(steps: int, warmup_steps: int, min_lr_ratio: float) -> Schedule:
    """LambdaLR factor of step s: (s + 1) / warmup during warm-up, then a half cosine from 1 to
    `min_lr_ratio` at `steps`."""
    def fn(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, steps - warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return min_lr_ratio + (1 - min_lr_ratio) * cosine
    return fn


def warmup_stable_decay(steps: int, warmup_steps: int, min_lr_ratio: float,
                        decay_fraction: float = 0.2) -> Schedule:
    """LambdaLR factor of step s: (s + 1) / warmup during warm-up, 1 until the last
    `decay_fraction` of the steps, then linear to `min_lr_ratio` at `steps`."""
    decay_start = max(warmup_steps, steps - round(decay_fraction * steps))

    def fn(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if step < decay_start:
            return 1.0
        progress = min(1.0, (step - decay_start) / max(1, steps - decay_start))
        return 1.0 - (1.0 - min_lr_ratio) * progress
    return fn


# each name: the LambdaLR factor built from a trainer config's fields
SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "cosine": lambda cfg: warmup_cosine(cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio),
    "wsd": lambda cfg: warmup_stable_decay(cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio,
                                           cfg.decay_fraction),
}


def lr_lambda(cfg) -> Schedule:
    """The schedule a trainer config names (`lr_schedule`, default cosine)."""
    name = getattr(cfg, "lr_schedule", "cosine")
    if name not in SCHEDULES:
        raise ValueError(f"unknown lr_schedule {name!r}; choose from {', '.join(SCHEDULES)}")
    return SCHEDULES[name](cfg)
