"""What every quantizer returns, and the helpers they share: code statistics, range
checks, and the process group size (codebook state is kept identical across processes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class QuantizerOutput:
    """quantized (batch, length, dim): straight-through quantized vectors, in the input space.
    codes (batch, length), or (batch, depth, length) for ResidualVQ. loss: weighted sum of the
    terms in ``losses`` (unweighted, e.g. "codebook", "commitment"). metrics: detached "usage"
    (fraction of codes used in the batch) and "perplexity" (exp entropy of the code histogram).
    """

    quantized: torch.Tensor
    codes: torch.LongTensor
    loss: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def code_metrics(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Usage and perplexity of a (K,) histogram of code counts."""
    counts = counts.float()
    p = counts / counts.sum().clamp(min=1.0)
    entropy = -torch.special.xlogy(p, p).sum()
    return {"usage": (counts > 0).float().mean(), "perplexity": entropy.exp()}


def check_codes(codes: torch.Tensor, size: int) -> None:
    bad = (codes < 0) | (codes >= size)
    if bool(bad.any()):
        raise ValueError(f"code id {int(codes[bad][0])} is out of range [0, {size})")
