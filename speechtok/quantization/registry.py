"""Quantizers by name: each name maps to a builder `(config, dim) -> quantizer module` and
whether it stacks several codes per position. A new quantizer is a module of its own plus one
`@register_quantizer("name")` builder, here or in that module (a registry of builders, as
audiocraft's quantizer builders, not a chain of `if name == ...`); both tokenizers can then
select it with `--quantizer name`, and the config's checks and help list it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from .binary import LookupFreeQuantizer
from .fsq import FSQ
from .gumbel import GumbelQuantizer
from .residual import ResidualFSQ, ResidualVQ
from .vq import VectorQuantizer

Builder = Callable[[Any, int], nn.Module]


@dataclass(frozen=True)
class QuantizerEntry:
    build: Builder
    residual: bool = False  # several codes per position: codes of shape (batch, depth, length)


QUANTIZERS: dict[str, QuantizerEntry] = {}


def register_quantizer(name: str, residual: bool = False) -> Callable[[Builder], Builder]:
    """Decorator: register `builder(cfg, dim)` as the quantizer `name`."""
    def add(builder: Builder) -> Builder:
        if name in QUANTIZERS:
            raise ValueError(f"a quantizer named {name!r} is already registered")
        QUANTIZERS[name] = QuantizerEntry(builder, residual)
        return builder
    return add


def _vq_kwargs(cfg) -> dict:
    return dict(codebook_dim=cfg.codebook_dim, l2_normalize=cfg.l2_normalize,
                beta=cfg.commitment_weight, ema_decay=cfg.ema_decay, kmeans_init=cfg.kmeans_init,
                dead_code_steps=cfg.dead_code_steps, simvq=cfg.simvq,
                rotation_trick=cfg.rotation_trick)


@register_quantizer("vq")
def build_vq(cfg, dim: int) -> nn.Module:
    return VectorQuantizer(dim, cfg.codebook_size, **_vq_kwargs(cfg))


@register_quantizer("rvq", residual=True)
def build_rvq(cfg, dim: int) -> nn.Module:
    return ResidualVQ(cfg.rvq_depth, dim, cfg.codebook_size, cfg.quantizer_dropout,
                      **_vq_kwargs(cfg))


@register_quantizer("fsq")
def build_fsq(cfg, dim: int) -> nn.Module:
    return FSQ(dim, cfg.fsq_levels)


@register_quantizer("rfsq", residual=True)
def build_rfsq(cfg, dim: int) -> nn.Module:
    return ResidualFSQ(cfg.rvq_depth, dim, cfg.fsq_levels, cfg.quantizer_dropout)


def _lookup_free(cfg, dim: int, spherical: bool) -> nn.Module:
    return LookupFreeQuantizer(
        dim, int(math.log2(cfg.codebook_size)), spherical=spherical, beta=cfg.commitment_weight,
        entropy_weight=cfg.entropy_weight, diversity=cfg.entropy_diversity,
        temperature=cfg.entropy_temperature)


@register_quantizer("lfq")
def build_lfq(cfg, dim: int) -> nn.Module:
    return _lookup_free(cfg, dim, spherical=False)


@register_quantizer("bsq")
def build_bsq(cfg, dim: int) -> nn.Module:
    return _lookup_free(cfg, dim, spherical=True)


@register_quantizer("gumbel")
def build_gumbel(cfg, dim: int) -> nn.Module:
    return GumbelQuantizer(dim, cfg.codebook_size, cfg.gumbel_temperature, cfg.gumbel_kl_weight,
                           cfg.gumbel_hard)
