"""Per-modality weighted cross-entropy (DALL-E, Ramesh et al. 2021: text 1/8, image 7/8).

    L = Σ_m w_m · mean_{t : modality(target_t) = m} CE_t

Each modality is averaged over its own target tokens, so a modality with many tokens (an image
has 64 codes, a caption 10 words) does not drown the others by count alone; a modality absent
from the batch contributes nothing. Each modality's loss and bits per token are reported.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .vocab import MODALITY_NAMES

IGNORE = -100


def modality_weighted_loss(logits: torch.Tensor, labels: torch.Tensor, modality: torch.Tensor,
                           weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """`logits` (B, T, V) predict `labels` (B, T) position by position (already shifted;
    IGNORE marks positions without a target); `modality` (B, T) is the modality id of each
    label. Returns (loss, metrics) with metrics `loss/<name>`, `bits/<name>`, `tokens/<name>`."""
    ce = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE,
                         reduction="none")
    valid = labels.flatten() != IGNORE
    mod = modality.flatten()
    loss = logits.new_zeros((), dtype=torch.float32)
    metrics: dict[str, float] = {}
    for m, name in MODALITY_NAMES.items():
        sel = valid & (mod == m)
        n = int(sel.sum())
        if n == 0:
            continue
        mean = ce[sel].mean()
        loss = loss + weights.get(name, 0.0) * mean
        value = float(mean.detach())
        metrics.update({f"loss/{name}": value, f"bits/{name}": value / math.log(2),
                        f"tokens/{name}": float(n)})
    return loss, metrics
