"""Per-modality weighted cross-entropy (DALL-E, Ramesh et al. 2021: text 1/8, image 7/8).

    L = Σ_m w_m · mean_{t : modality(target_t) = m} CE_t

Each modality is averaged over its own target tokens, so a modality with many tokens (an image
has 64 codes, a caption 10 words) does not drown the others by count alone; a modality absent
from the batch contributes nothing. Each modality's loss and bits per token are reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .vocab import MODALITY_NAMES

IGNORE = -100


def token_counts(labels: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
    """Target tokens per modality, (number of modalities,) float: to all-reduce across processes
    before `modality_weighted_loss(..., global_counts=...)`."""
    valid = labels != IGNORE
    return torch.stack([(valid & (modality == m)).sum() for m in MODALITY_NAMES]).float()


def modality_weighted_loss(logits: torch.Tensor, labels: torch.Tensor, modality: torch.Tensor,
                           weights: dict[str, float], global_counts: torch.Tensor | None = None,
                           world_size: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
    """`logits` (B, T, V) predict `labels` (B, T) position by position (already shifted;
    IGNORE marks positions without a target); `modality` (B, T) is the modality id of each
    label. Returns (loss, metrics) with metrics `loss/<name>`, `bits/<name>`, `tokens/<name>`
    (of this batch).

    Data-parallel: with `global_counts` (the all-reduced `token_counts`) each modality's CE sum
    is divided by its count over all processes and scaled by `world_size`, so that the mean
    DDP takes over processes equals the loss of the whole global batch on one process."""
    ce = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE,
                         reduction="none")
    valid = labels.flatten() != IGNORE
    mod = modality.flatten()
    # zero with a graph: a process whose blocks are all padding still joins DDP's backward
    # (in the logits' own dtype: an fp32 copy of a (B, T, V) tensor would cost its memory)
    loss = (logits.sum() * 0.0).float()
    metrics: dict[str, float] = {}
    for m, name in MODALITY_NAMES.items():
        sel = valid & (mod == m)
        n = int(sel.sum())
        if n == 0:
            continue
        mean = ce[sel].mean()
        if global_counts is None:
            loss = loss + weights.get(name, 0.0) * mean
        else:
            loss = loss + weights.get(name, 0.0) * ce[sel].sum() * world_size / global_counts[m]
        value = float(mean.detach())
        metrics.update({f"loss/{name}": value, f"bits/{name}": value / math.log(2),
                        f"tokens/{name}": float(n)})
    return loss, metrics


def merge_metrics(parts: list[dict[str, float]],
                  reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
                  ) -> dict[str, float]:
    """The metrics of several batches (each from `modality_weighted_loss`) as those of one batch
    holding all of them: each modality's loss is averaged over all its tokens, not over batches.
    `reduce` sums a tensor over processes (e.g. `lambda t: accelerator.reduce(t, "sum")`), so
    every process gets the figures of the global batch."""
    stats = torch.zeros(len(MODALITY_NAMES), 2, dtype=torch.float64)  # (modality, [CE sum, n])
    for metrics in parts:
        for m, name in MODALITY_NAMES.items():
            n = metrics.get(f"tokens/{name}", 0.0)
            if n:
                stats[m, 0] += metrics[f"loss/{name}"] * n
                stats[m, 1] += n
    if reduce is not None:
        stats = reduce(stats).cpu()
    merged: dict[str, float] = {}
    for m, name in MODALITY_NAMES.items():
        total, n = float(stats[m, 0]), float(stats[m, 1])
        if n:
            merged.update({f"loss/{name}": total / n, f"bits/{name}": total / n / math.log(2),
                           f"tokens/{name}": n})
    return merged
