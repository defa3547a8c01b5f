"""The interface every quantizer implements (after audiocraft's `BaseQuantizer`): vectors
`(batch, length, dim)` in, a typed `QuantizerOutput` out; `encode` to code ids and `decode`
back. Builders registered by name (speechtok.quantization.registry) return one of these."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from .output import QuantizerOutput


class BaseQuantizer(nn.Module, ABC):
    """`codebook_size` ids a code; `depth` codes a position (1, or the stages of a residual
    quantizer, whose codes are `(batch, depth, length)`)."""

    codebook_size: int
    depth: int = 1

    @abstractmethod
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        """Training and evaluation: `x` (batch, length, dim) → quantized vectors (straight
        through), codes, losses and code metrics."""

    @abstractmethod
    def encode(self, x: torch.Tensor) -> torch.LongTensor:
        """(batch, length, dim) → codes (batch, length), or (batch, depth, length)."""

    @abstractmethod
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """The inverse of `encode`: codes → (batch, length, dim)."""
