"""Residual quantization (SoundStream; RQ-VAE): a stack of quantizers, each quantizing what
the ones before it missed, with VQ codebooks (ResidualVQ) or FSQ grids (ResidualFSQ), and
SoundStream's quantizer dropout."""

from __future__ import annotations

from abc import abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from .base import BaseQuantizer
from .fsq import FSQ
from .output import QuantizerOutput, code_metrics
from .vq import VectorQuantizer


class _Residual(BaseQuantizer):
    """The residual loop shared by both kinds: stage i quantizes `residual`, the output is the
    sum of the stages' quantized values with one straight-through over the sum.

    `quantizer_dropout` (SoundStream, Zeghidour et al. 2021, §3.2): in training, that fraction
    of the batch's items keeps only its first n stages' sum, n uniform in 1 … depth, so the
    decoder learns to work from any prefix of the codes (bitrate scalability). Every stage
    still quantizes and learns on every item; only the output is truncated.
    """

    def __init__(self, depth: int, dim: int, inner_dim: int, quantizer_dropout: float):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout must be in [0, 1], got {quantizer_dropout}")
        self.depth, self.dim, self.quantizer_dropout = depth, dim, quantizer_dropout
        self.in_proj = nn.Linear(dim, inner_dim) if inner_dim != dim else nn.Identity()
        self.out_proj = nn.Linear(inner_dim, dim) if inner_dim != dim else nn.Identity()

    # a stage: residual (B, N, C) -> QuantizerOutput in the same space; ids <-> vectors
    @abstractmethod
    def _stage(self, i: int, residual: torch.Tensor) -> QuantizerOutput: ...

    @abstractmethod
    def _stage_encode(self, i: int, residual: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _stage_decode(self, i: int, codes: torch.Tensor) -> torch.Tensor: ...

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return self.in_proj(x)

    def encode(self, x: torch.Tensor) -> torch.LongTensor:
        """(batch, length, dim) -> (batch, depth, length) code ids."""
        with torch.no_grad():
            residual, codes = self._project(x), []
            for i in range(self.depth):
                c = self._stage_encode(i, residual)
                residual = residual - self._stage_decode(i, c)
                codes.append(c)
            return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(batch, depth, length) code ids -> (batch, length, dim); a prefix of the depth
        (batch, n < depth, length) decodes the coarser reconstruction of the first n stages."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.depth:
            raise ValueError(f"codes must be (batch, depth ≤ {self.depth}, length), got "
                             f"{tuple(codes.shape)}")
        total = sum(self._stage_decode(i, codes[:, i]) for i in range(codes.shape[1]))
        return self.out_proj(total)

    def _kept_stages(self, batch: int, device) -> torch.Tensor | None:
        """(batch,) number of stages each item keeps, or None for all."""
        if not self.training or self.quantizer_dropout == 0 or self.depth == 1:
            return None
        kept = torch.randint(1, self.depth + 1, (batch,), device=device)
        dropped = torch.rand(batch, device=device) < self.quantizer_dropout
        return torch.where(dropped, kept, self.depth)

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        z = self._project(x)  # (B, N, C)
        residual, total = z, torch.zeros_like(z)
        kept = self._kept_stages(z.shape[0], z.device)
        codes, loss, losses, metrics = [], z.new_zeros(()), {}, {}
        for i in range(self.depth):
            out = self._stage(i, residual)
            # Each stage's losses still reach the encoder through `residual`; only the quantized
            # value is detached, so later stages don't send gradient back through it.
            q = out.quantized.detach()
            residual = residual - q
            total = total + (q if kept is None else q * (kept > i).to(q.dtype)[:, None, None])
            codes.append(out.codes)
            loss = loss + out.loss
            for name, value in out.losses.items():
                losses[name] = losses.get(name, 0) + value
            if i == 0:
                metrics.update(out.metrics)
            if "usage" in out.metrics:
                metrics[f"usage_{i}"] = out.metrics["usage"]
        # One straight-through over the sum (audiocraft's fix of encodec issue #25): summing each
        # stage's own straight-through output would scale the encoder gradient by depth.
        if z.requires_grad:
            total = total + (z - z.detach())
        return QuantizerOutput(self.out_proj(total), torch.stack(codes, dim=1), loss, losses,
                               metrics)


class ResidualVQ(_Residual):
    """Residual VQ (SoundStream, Zeghidour et al. 2021; RQ-VAE, Lee et al. 2022): stage i is a
    VectorQuantizer of what stages < i missed.

    ``codebook_dim`` and ``l2_normalize`` (in ``vq_kwargs``) act once, on the input, through a
    projection shared by all stages, so residuals live in one space. Stages themselves quantize
    in Euclidean space: residuals shrink from stage to stage, and normalising them would throw
    their scale away.
    """

    def __init__(self, depth, dim, codebook_size, quantizer_dropout: float = 0.0, **vq_kwargs):
        codebook_dim = vq_kwargs.pop("codebook_dim", None) or dim
        super().__init__(depth, dim, codebook_dim, quantizer_dropout)
        self.l2_normalize = bool(vq_kwargs.pop("l2_normalize", False))
        self.codebook_size = codebook_size
        self.stages = nn.ModuleList(
            VectorQuantizer(codebook_dim, codebook_size, **vq_kwargs) for _ in range(depth)
        )

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        z = self.in_proj(x)
        return F.normalize(z, dim=-1) if self.l2_normalize else z

    def commitment_to(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The first stage's VectorQuantizer.commitment_to on the projected input: the
        codebook that carries most of the content."""
        return self.stages[0].commitment_to(self._project(x), codes)

    def _stage(self, i, residual):
        return self.stages[i](residual)

    def _stage_encode(self, i, residual):
        return self.stages[i].encode(residual)

    def _stage_decode(self, i, codes):
        return self.stages[i].decode(codes)


class ResidualFSQ(_Residual):
    """Residual FSQ (Mentzer et al. 2023, §4.4; as in vector-quantize-pytorch's ResidualFSQ):
    the latent is bounded once by FSQ's tanh into [-1, 1], stage 0 rounds it on the FSQ grid
    and stage i rounds what is left on that grid shrunk by (levels - 1)^i, the span of stage
    i-1's rounding error, so every stage adds resolution. No codebook, no auxiliary loss."""

    def __init__(self, depth, dim, levels: tuple[int, ...], quantizer_dropout: float = 0.0):
        levels = tuple(int(v) for v in levels)
        super().__init__(depth, dim, len(levels), quantizer_dropout)
        self.grid = FSQ(len(levels), levels)  # one grid, no projections, shared by all stages
        self.levels, self.codebook_size = levels, self.grid.codebook_size
        steps = torch.tensor(levels, dtype=torch.float) - 1
        self.register_buffer("_scales", steps[None, :] ** -torch.arange(depth)[:, None].float(),
                             persistent=False)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return self.grid.bound(self.in_proj(x).float()) / self.grid.half_width

    def _round(self, i: int, residual: torch.Tensor) -> torch.Tensor:
        """Stage i's grid digits minus the half width (integer-valued floats)."""
        half = self.grid.half_width
        steps = (residual / self._scales[i] * half).round()
        return torch.maximum(torch.minimum(steps, self.grid.level_counts - 1 - half), -half)

    def _stage(self, i, residual):
        rounded = self._round(i, residual)
        codes = self.grid.to_codes(rounded)
        counts = torch.bincount(codes.flatten(), minlength=self.codebook_size)
        return QuantizerOutput(rounded / self.grid.half_width * self._scales[i], codes,
                               residual.new_zeros(()), {}, code_metrics(counts))

    def _stage_encode(self, i, residual):
        return self.grid.to_codes(self._round(i, residual))

    def _stage_decode(self, i, codes):
        return self.grid.decode(codes) * self._scales[i]
