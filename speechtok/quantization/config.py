"""The quantizer block that both tokenizer configs share, and the factory that builds it.

`SpeechTokenizerConfig` and `ImageTokenizerConfig` inherit these fields (flat, so a saved
config.json and a `--codebook_size 512` on the command line look the same as before), each with
its own defaults where the modalities differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from ..fields import option
from .fsq import FSQ
from .residual import ResidualVQ
from .vq import VectorQuantizer

QUANTIZERS = ("vq", "rvq", "fsq")


@dataclass
class QuantizerConfig:
    """How latents become codes (speechtok.quantization)."""

    quantizer: str = option("vq", "vq (one codebook), rvq (residual codebooks) or fsq (finite "
                            "scalar grid)")
    codebook_size: int = option(256, "codes per codebook, K (fsq: set to prod(fsq_levels))")
    codebook_dim: int | None = option(16, "look codes up in this many dimensions after a linear "
                                      "projection (factorised codes); none = latent_dim")
    l2_normalize: bool = option(True, "l2-normalise latents and codes: cosine-similarity lookup "
                                "(ViT-VQGAN)")
    ema_decay: float | None = option(0.95, "learn codes by exponential moving averages with "
                                     "this decay (VQ-VAE-2); none = by the codebook loss")
    commitment_weight: float = option(0.25, "beta of the commitment loss (VQ-VAE eq. 3)")
    kmeans_init: bool = option(True, "initialise the codebook by k-means on the first batch")
    dead_code_steps: int = option(50, "re-seed codes unused for this many steps from current "
                                  "latents (0 = never)")
    rvq_depth: int = option(4, "rvq: number of residual codebooks")
    fsq_levels: tuple[int, ...] = option((8, 5, 5, 5), "fsq: levels per latent channel")

    def __post_init__(self):
        self.fsq_levels = tuple(int(v) for v in self.fsq_levels)
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {', '.join(QUANTIZERS)}, got "
                             f"{self.quantizer!r}")
        if self.codebook_size < 2:
            raise ValueError(f"codebook_size must be ≥ 2, got {self.codebook_size}")
        if self.rvq_depth < 1:
            raise ValueError(f"rvq_depth must be ≥ 1, got {self.rvq_depth}")
        if self.quantizer == "fsq":
            self.codebook_size = math.prod(self.fsq_levels)

    @property
    def code_depth(self) -> int:
        """Codes per position: rvq_depth for residual VQ, else 1."""
        return self.rvq_depth if self.quantizer == "rvq" else 1


def build_quantizer(cfg: QuantizerConfig, dim: int) -> nn.Module:
    """The quantizer `cfg` asks for, over latents of `dim` channels."""
    if cfg.quantizer == "fsq":
        return FSQ(dim, cfg.fsq_levels)
    kwargs = dict(
        codebook_dim=cfg.codebook_dim, l2_normalize=cfg.l2_normalize, beta=cfg.commitment_weight,
        ema_decay=cfg.ema_decay, kmeans_init=cfg.kmeans_init,
        dead_code_steps=cfg.dead_code_steps,
    )
    if cfg.quantizer == "rvq":
        return ResidualVQ(cfg.rvq_depth, dim, cfg.codebook_size, **kwargs)
    return VectorQuantizer(dim, cfg.codebook_size, **kwargs)
