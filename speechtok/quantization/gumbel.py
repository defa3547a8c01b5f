"""The Gumbel-softmax relaxation of a categorical code (DALL-E's dVAE, Ramesh et al. 2021)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import BaseQuantizer
from .output import QuantizerOutput, check_codes, code_metrics


class GumbelQuantizer(BaseQuantizer):
    """Relaxed categorical codes of (batch, length, dim) latents (DALL-E's dVAE; Jang et al.
    2017 and Maddison et al. 2017 for the relaxation).

    A linear map gives logits over `codebook_size` codes. In training the output is the
    Gumbel-softmax sample at `temperature` times the code embeddings (with `hard`, its one-hot
    argmax and a straight-through gradient of the soft sample), so gradients reach every code
    instead of one; in eval the code is the logits' argmax. The loss is the KL of the code
    distribution softmax(logits) to the uniform prior, weighted by `kl_weight` (the dVAE's ELBO
    term; DALL-E raises its weight to 6.6 over training, taming-transformers' GumbelQuantize
    uses 5e-4). DALL-E anneals the temperature from 1 to 1/16; here it is fixed per run.
    """

    def __init__(self, dim: int, codebook_size: int, temperature: float = 1.0,
                 kl_weight: float = 5e-4, hard: bool = False):
        super().__init__()
        if codebook_size < 2 or temperature <= 0:
            raise ValueError(f"need codebook_size ≥ 2 and temperature > 0, got "
                             f"{codebook_size=} {temperature=}")
        self.dim, self.codebook_size = dim, codebook_size
        self.temperature, self.kl_weight, self.hard = temperature, kl_weight, hard
        self.to_logits = nn.Linear(dim, codebook_size)
        self.embed = nn.Embedding(codebook_size, dim)

    @property
    def codebook(self) -> torch.Tensor:
        return self.embed.weight

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        logits = self.to_logits(x).float()  # (B, N, K)
        log_q = F.log_softmax(logits, dim=-1)
        # KL(q ‖ uniform) = Σ q log q + log K, averaged over positions
        kl = (log_q.exp() * log_q).sum(-1).mean() + math.log(self.codebook_size)
        if self.training:
            soft = F.gumbel_softmax(logits, tau=self.temperature, hard=self.hard, dim=-1)
            codes = soft.argmax(-1)
            quantized = soft.to(self.embed.weight.dtype) @ self.embed.weight
        else:
            codes = logits.argmax(-1)
            quantized = self.embed(codes)
        counts = torch.bincount(codes.flatten(), minlength=self.codebook_size)
        return QuantizerOutput(quantized.to(x.dtype), codes, self.kl_weight * kl, {"kl": kl},
                               code_metrics(counts))

    def encode(self, x: torch.Tensor) -> torch.LongTensor:
        """(batch, length, dim) -> (batch, length) code ids (the logits' argmax)."""
        with torch.no_grad():
            return self.to_logits(x).argmax(-1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(batch, length) code ids -> (batch, length, dim)."""
        check_codes(codes, self.codebook_size)
        return self.embed(codes)
