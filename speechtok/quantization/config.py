"""The quantizer block that both tokenizer configs share, and the factory that builds it
(through the registry of quantizers by name).

`SpeechTokenizerConfig` and `ImageTokenizerConfig` inherit these fields (flat, so a saved
config.json and a `--codebook_size 512` on the command line look the same as before), each with
its own defaults where the modalities differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..fields import check_sizes, option
from .base import BaseQuantizer
from .registry import QUANTIZERS


@dataclass
class QuantizerConfig:
    """How latents become codes (speechtok.quantization)."""

    quantizer: str = option("vq", "vq (one codebook), rvq (residual codebooks), fsq (finite "
                            "scalar grid), rfsq (residual fsq), lfq (lookup-free signs), bsq "
                            "(binary spherical) or gumbel (Gumbel-softmax, DALL-E dVAE)")
    codebook_size: int = option(256, "codes per codebook, K (fsq/rfsq: set to prod(fsq_levels); "
                                "lfq/bsq: a power of 2, one bit per latent channel)")
    codebook_dim: int | None = option(16, "look codes up in this many dimensions after a linear "
                                      "projection (factorised codes); none = latent_dim")
    l2_normalize: bool = option(True, "l2-normalise latents and codes: cosine-similarity lookup "
                                "(ViT-VQGAN)")
    ema_decay: float | None = option(0.95, "learn codes by exponential moving averages with "
                                     "this decay (VQ-VAE-2); none = by the codebook loss")
    commitment_weight: float = option(0.25, "beta of the commitment loss (VQ-VAE eq. 3; lfq/bsq "
                                      "too)")
    kmeans_init: bool = option(True, "initialise the codebook by k-means on the first batch")
    dead_code_steps: int = option(50, "re-seed codes unused for this many steps from current "
                                  "latents (0 = never)")
    simvq: bool = option(False, "vq/rvq: learn a linear map of a frozen codebook (SimVQ); "
                         "needs ema_decay none")
    rotation_trick: bool = option(False, "vq/rvq: pass gradients to the encoder by the rotation "
                                  "trick (Fifty et al. 2024) instead of straight-through")
    rvq_depth: int = option(4, "rvq/rfsq: number of residual stages (codes per position)")
    quantizer_dropout: float = option(0.0, "rvq/rfsq: fraction of training items that keep "
                                      "only a random prefix of the stages (SoundStream)")
    fsq_levels: tuple[int, ...] = option((8, 5, 5, 5), "fsq/rfsq: levels per latent channel")
    entropy_weight: float = option(0.1, "lfq/bsq: weight of the entropy penalty (MagViT-v2)")
    entropy_diversity: float = option(1.0, "lfq/bsq: weight of the codebook-entropy part of "
                                      "the penalty (gamma)")
    entropy_temperature: float = option(0.01, "lfq/bsq: temperature of the soft code "
                                        "assignment in the entropy penalty")
    gumbel_temperature: float = option(1.0, "gumbel: temperature of the relaxation")
    gumbel_kl_weight: float = option(5e-4, "gumbel: weight of the KL to the uniform prior")
    gumbel_hard: bool = option(False, "gumbel: one-hot samples with a straight-through "
                               "gradient")

    # integer fields whose sane range goes past fields.SIZE_LIMIT
    SIZE_CAPS = {"codebook_size": 2 ** 20, "dead_code_steps": 10 ** 9, "sample_rate": 768_000,
                 "resolution": 8192, "rvq_depth": 64}

    def __post_init__(self):
        check_sizes(self, self.SIZE_CAPS)  # before any of it is used to allocate
        self.fsq_levels = tuple(int(v) for v in self.fsq_levels)
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {', '.join(QUANTIZERS)}, got "
                             f"{self.quantizer!r}")
        if self.codebook_size < 2:
            raise ValueError(f"codebook_size must be ≥ 2, got {self.codebook_size}")
        if self.rvq_depth < 1:
            raise ValueError(f"rvq_depth must be ≥ 1, got {self.rvq_depth}")
        if self.quantizer in ("fsq", "rfsq"):
            self.codebook_size = math.prod(self.fsq_levels)
        if self.quantizer in ("lfq", "bsq") and self.codebook_size & (self.codebook_size - 1):
            raise ValueError(f"{self.quantizer} codes are bit strings: codebook_size must be a "
                             f"power of 2, got {self.codebook_size}")
        if self.simvq and self.ema_decay is not None and self.quantizer in ("vq", "rvq"):
            raise ValueError("simvq learns its codebook map by gradient: set ema_decay none")

    @property
    def code_depth(self) -> int:
        """Codes per position: rvq_depth for the residual quantizers, else 1."""
        return self.rvq_depth if QUANTIZERS[self.quantizer].residual else 1


def build_quantizer(cfg: QuantizerConfig, dim: int) -> BaseQuantizer:
    """The quantizer `cfg` names (speechtok.quantization.registry), over latents of `dim`
    channels."""
    entry = QUANTIZERS[cfg.quantizer]
    quantizer = entry.build(cfg, dim)
    if not isinstance(quantizer, BaseQuantizer):
        raise TypeError(f"the builder of quantizer {cfg.quantizer!r} returned a "
                        f"{type(quantizer).__name__}, not a speechtok.quantization.BaseQuantizer")
    if quantizer.depth != cfg.code_depth:
        raise TypeError(f"quantizer {cfg.quantizer!r} gives {quantizer.depth} codes a position "
                        f"but its registration says {cfg.code_depth} (residual="
                        f"{entry.residual})")
    return quantizer
