"""Binary codes without a codebook: lookup-free quantization (LFQ, MagViT-v2, Yu et al. 2024)
and binary spherical quantization (BSQ, Zhao et al. 2024).

A latent is projected to `bits` channels and each channel is quantized to its sign, so the
implicit codebook is the 2^bits corners of a cube (LFQ) or, after l2-normalising the latent,
of the cube inscribed in the unit sphere (BSQ: corners ±1/√bits). The code id is the integer
whose binary digits are the signs. Nothing is looked up, so the cost is linear in `bits`, not
in the codebook size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import BaseQuantizer
from .output import QuantizerOutput, check_codes, code_metrics


def binary_entropy(p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Entropy (nats) of Bernoulli(p), elementwise; p is clamped to [eps, 1 - eps] so that the
    gradient stays finite where p saturates."""
    p = p.clamp(eps, 1 - eps)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def binary_entropy_of_logits(a: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of Bernoulli(σ(a)): σ(a) softplus(-a) + σ(-a) softplus(a), which stays
    finite, gradient included, however large |a| is."""
    p = torch.sigmoid(a)
    return p * F.softplus(-a) + (1 - p) * F.softplus(a)


def entropy_terms(z: torch.Tensor, scale: float, temperature: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean per-sample entropy, codebook entropy) in nats of the soft code assignment
    p(c | z) ∝ exp(-‖z - c‖² / τ) over the corners c ∈ {±scale}^bits, for z (n, bits).

    -‖z - c‖² = 2 z·c + const, so p(c | z) factorises over bits: bit i is +scale with
    probability σ(4 · scale · z_i / τ). The per-sample entropy is then exactly the sum of the
    bits' entropies. The codebook entropy H(E_z p(c | z)) does not factorise; like BSQ (Zhao et
    al. 2024, eq. 9) it is taken as the sum of the bits' marginal entropies, an upper bound that
    costs O(bits) instead of O(2^bits) per vector and is exact when the bits are independent.
    """
    logits = 4 * scale * z.float() / temperature  # (n, bits)
    per_sample = binary_entropy_of_logits(logits).sum(-1).mean()
    codebook = binary_entropy(torch.sigmoid(logits).mean(0)).sum()
    return per_sample, codebook


class LookupFreeQuantizer(BaseQuantizer):
    """LFQ (MagViT-v2, Yu et al. 2024) of (batch, length, dim) latents into 2^bits codes; with
    `spherical=True`, BSQ (Zhao et al. 2024).

    Losses: "commitment" ‖z - sg[q]‖² (weight `beta`) and, in training mode, "entropy" =
    E[H(p(c|z))] - `diversity` · H(E[p(c|z)]) (weight `entropy_weight`; MagViT-v2 eq. 5):
    confident codes per vector, all codes used over the batch. `temperature` sets the
    softness of p(c | z).
    """

    def __init__(self, dim: int, bits: int, spherical: bool = False, beta: float = 0.25,
                 entropy_weight: float = 0.1, diversity: float = 1.0,
                 temperature: float = 0.01):
        super().__init__()
        if bits < 1 or bits > 62:
            raise ValueError(f"bits must be in [1, 62], got {bits}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.dim, self.bits, self.codebook_size = dim, bits, 2 ** bits
        self.spherical, self.beta = spherical, beta
        self.entropy_weight, self.diversity = entropy_weight, diversity
        self.temperature = temperature
        # BSQ's corners lie on the unit sphere: ±1/√bits per channel
        self.scale = 1 / math.sqrt(bits) if spherical else 1.0
        self.in_proj = nn.Linear(dim, bits) if dim != bits else nn.Identity()
        self.out_proj = nn.Linear(bits, dim) if dim != bits else nn.Identity()
        self.register_buffer("_powers", 2 ** torch.arange(bits), persistent=False)

    def _latent(self, x: torch.Tensor) -> torch.Tensor:
        z = self.in_proj(x).float()
        return F.normalize(z, dim=-1) if self.spherical else z

    def _to_codes(self, positive: torch.Tensor) -> torch.LongTensor:
        """The ids of the bits (1.0 where a channel is positive, else 0.0)."""
        if self.bits <= 24:  # the binary id as a float dot product: exact, one matmul
            return (positive @ self._powers.to(positive.dtype)).long()
        return (positive.long() * self._powers).sum(-1)

    def _corners(self, codes: torch.Tensor) -> torch.Tensor:
        bits = (codes.unsqueeze(-1) // self._powers) % 2
        return (bits.float() * 2 - 1) * self.scale

    @property
    def codebook(self) -> torch.Tensor:
        """All (2^bits, bits) corners (only sensible to build for small `bits`)."""
        return self._corners(torch.arange(self.codebook_size, device=self._powers.device))

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        z = self._latent(x)  # (B, N, bits)
        positive = (z > 0).to(z.dtype)  # the bits, once for the values and the ids
        q = positive * (2 * self.scale) - self.scale
        codes = self._to_codes(positive)
        losses = {"commitment": F.mse_loss(z, q)}
        loss = self.beta * losses["commitment"]
        metrics = {}
        if self.training:  # the entropy penalty shapes training only (as in MagViT-v2)
            per_sample, codebook = entropy_terms(z.reshape(-1, self.bits), self.scale,
                                                 self.temperature)
            losses["entropy"] = per_sample - self.diversity * codebook
            loss = loss + self.entropy_weight * losses["entropy"]
            metrics["bit_entropy"] = codebook.detach() / (self.bits * math.log(2))
        if z.requires_grad:  # straight-through sign, exact value as in VectorQuantizer
            q = q + (z - z.detach())
        if self.bits <= 20:  # a histogram over the codes is affordable
            metrics.update(code_metrics(torch.bincount(codes.flatten(),
                                                       minlength=self.codebook_size)))
        return QuantizerOutput(self.out_proj(q).to(x.dtype), codes, loss, losses, metrics)

    def encode(self, x: torch.Tensor) -> torch.LongTensor:
        """(batch, length, dim) -> (batch, length) code ids."""
        with torch.no_grad():
            z = self._latent(x)
            return self._to_codes((z > 0).to(z.dtype))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(batch, length) code ids -> (batch, length, dim)."""
        check_codes(codes, self.codebook_size)
        return self.out_proj(self._corners(codes))
