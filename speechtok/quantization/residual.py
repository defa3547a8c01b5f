"""Residual vector quantization (SoundStream): a stack of codebooks, each quantizing what
the ones before it missed."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .output import QuantizerOutput
from .vq import VectorQuantizer


class ResidualVQ(nn.Module):
    """Residual VQ (SoundStream, Zeghidour et al. 2021): stage i quantizes what stages < i missed.

    ``codebook_dim`` and ``l2_normalize`` (in ``vq_kwargs``) act once, on the input, through a
    projection shared by all stages, so residuals live in one space. Stages themselves quantize
    in Euclidean space: residuals shrink from stage to stage, and normalising them would throw
    their scale away.
    """

    def __init__(self, depth, dim, codebook_size, **vq_kwargs):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        codebook_dim = vq_kwargs.pop("codebook_dim", None) or dim
        self.l2_normalize = bool(vq_kwargs.pop("l2_normalize", False))
        self.depth, self.dim, self.codebook_size = depth, dim, codebook_size
        self.in_proj = nn.Linear(dim, codebook_dim) if codebook_dim != dim else nn.Identity()
        self.out_proj = nn.Linear(codebook_dim, dim) if codebook_dim != dim else nn.Identity()
        self.stages = nn.ModuleList(
            VectorQuantizer(codebook_dim, codebook_size, **vq_kwargs) for _ in range(depth)
        )

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        z = self.in_proj(x)
        return F.normalize(z, dim=-1) if self.l2_normalize else z

    def encode(self, x: torch.Tensor) -> torch.LongTensor:
        """(batch, length, dim) -> (batch, depth, length) code ids."""
        with torch.no_grad():
            residual, codes = self._project(x), []
            for stage in self.stages:
                c = stage.encode(residual)
                residual = residual - F.embedding(c, stage.codebook)
                codes.append(c)
            return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(batch, depth, length) code ids -> (batch, length, dim)."""
        if codes.dim() != 3 or codes.shape[1] != self.depth:
            raise ValueError(f"codes must be (batch, {self.depth}, length), got {codes.shape}")
        total = sum(stage.decode(codes[:, i]) for i, stage in enumerate(self.stages))
        return self.out_proj(total)

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        z = self._project(x)  # (B, N, C)
        residual, total = z, torch.zeros_like(z)
        codes, loss, losses, metrics = [], z.new_zeros(()), {}, {}
        for i, stage in enumerate(self.stages):
            out = stage(residual)
            # Each stage's commitment loss still reaches the encoder through `residual`; only the
            # quantized value is detached, so later stages don't send gradient back through it.
            q = out.quantized.detach()
            residual = residual - q
            total = total + q
            codes.append(out.codes)
            loss = loss + out.loss
            for name, value in out.losses.items():
                losses[name] = losses.get(name, 0) + value
            if i == 0:
                metrics.update(out.metrics)
            metrics[f"usage_{i}"] = out.metrics["usage"]
        # One straight-through over the sum (audiocraft's fix of encodec issue #25): summing each
        # stage's own straight-through output would scale the encoder gradient by depth.
        if z.requires_grad:
            total = total + (z - z.detach())
        return QuantizerOutput(self.out_proj(total), torch.stack(codes, dim=1), loss, losses,
                               metrics)
