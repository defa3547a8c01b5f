"""Finite scalar quantization (Mentzer et al. 2023): a fixed grid, no codebook to learn."""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import BaseQuantizer
from .output import QuantizerOutput, check_codes, code_metrics


class FSQ(BaseQuantizer):
    """Finite Scalar Quantization (Mentzer et al. 2023): no codebook, no auxiliary loss.

    Each of ``len(levels)`` channels is bounded by tanh to ``levels[i]`` values and rounded with
    a straight-through gradient; the implicit codebook is the grid, ``prod(levels)`` codes.
    """

    def __init__(self, dim, levels: tuple[int, ...]):
        super().__init__()
        levels = tuple(int(level) for level in levels)
        if not levels or min(levels) < 2:
            raise ValueError(f"levels must be a non-empty tuple of ints >= 2, got {levels}")
        self.dim, self.levels, self.codebook_size, n = dim, levels, math.prod(levels), len(levels)
        self.in_proj = nn.Linear(dim, n) if dim != n else nn.Identity()
        self.out_proj = nn.Linear(n, dim) if dim != n else nn.Identity()
        lv = torch.tensor(levels)
        self.register_buffer("level_counts", lv.float(), persistent=False)
        self.register_buffer("half_width", (lv // 2).float(), persistent=False)
        basis = torch.cumprod(torch.tensor((1,) + levels[:-1]), dim=0)
        self.register_buffer("_basis", basis, persistent=False)
        # the mixed-radix id as a float dot product: exact below 2^24 codes, one matmul
        self.register_buffer("_basis_f", basis.float(), persistent=False)
        # Paper appendix A.1: even level counts are offset by 1/2 so rounding yields exactly L
        # values; the shift (atanh, where the paper's listing has tan) centres z = 0 at 0.
        half_l = (lv.float() - 1) * (1 - 1e-3) / 2
        offset = torch.where(lv % 2 == 0, 0.5, 0.0)
        self.register_buffer("_half_l", half_l, persistent=False)
        self.register_buffer("_offset", offset, persistent=False)
        self.register_buffer("_shift", torch.atanh(offset / half_l), persistent=False)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Each channel squashed into its level range, in units of grid steps (before
        rounding); residual FSQ bounds with the same grid."""
        return torch.tanh(z + self._shift) * self._half_l - self._offset

    def codes_to_grid(self, codes: torch.Tensor) -> torch.Tensor:
        """Code ids → their grid points, each channel in [-1, 1]."""
        digits = (codes.unsqueeze(-1) // self._basis) % self.level_counts.long()
        return (digits.float() - self.half_width) / self.half_width

    @property
    def codebook(self) -> torch.Tensor:
        """All (codebook_size, len(levels)) grid points, in [-1, 1]."""
        return self.codes_to_grid(torch.arange(self.codebook_size, device=self._basis.device))

    def to_codes(self, rounded: torch.Tensor) -> torch.LongTensor:
        """Rounded grid coordinates (integers in [-half_width, levels - 1 - half_width]) → the
        mixed-radix code id."""
        digits = rounded.detach() + self.half_width
        if self.codebook_size < 2 ** 24:  # mixed-radix id, exact in float32
            return (digits.float() @ self._basis_f).long()
        return (digits.long() * self._basis).sum(-1)

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        z = self.bound(self.in_proj(x).float())  # (B, N, L)
        rounded = z.round()
        codes = self.to_codes(rounded)  # (B, N)
        if z.requires_grad:  # straight-through rounding, exact value as in VectorQuantizer
            rounded = rounded + (z - z.detach())
        quantized = self.out_proj(rounded / self.half_width)
        counts = torch.bincount(codes.flatten(), minlength=self.codebook_size)
        return QuantizerOutput(quantized, codes, x.new_zeros(()), {}, code_metrics(counts))

    def encode(self, x: torch.Tensor) -> torch.LongTensor:
        """(batch, length, dim) -> (batch, length) code ids."""
        with torch.no_grad():
            return self.to_codes(self.bound(self.in_proj(x).float()).round())

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(batch, length) code ids -> (batch, length, dim)."""
        check_codes(codes, self.codebook_size)
        return self.out_proj(self.codes_to_grid(codes))
