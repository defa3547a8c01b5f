"""Quantizers of (batch, length, dim) latents, one interface (`BaseQuantizer`): `forward`
returns a typed `QuantizerOutput` (quantized, codes, loss, losses, metrics); `encode` /
`decode` map latents to codes and back. `QuantizerConfig` is the block of config fields both
tokenizers share, and `build_quantizer` makes the quantizer it names from the registry
(`register_quantizer`)."""

from .base import BaseQuantizer
from .binary import LookupFreeQuantizer
from .config import QuantizerConfig, build_quantizer
from .fsq import FSQ
from .gumbel import GumbelQuantizer
from .kmeans import kmeans, nearest_code
from .output import QuantizerOutput
from .registry import QUANTIZERS, QuantizerEntry, register_quantizer
from .residual import ResidualFSQ, ResidualVQ
from .vq import VectorQuantizer, rotate_onto

__all__ = ["FSQ", "QUANTIZERS", "BaseQuantizer", "GumbelQuantizer", "LookupFreeQuantizer",
           "QuantizerConfig", "QuantizerEntry", "QuantizerOutput", "ResidualFSQ", "ResidualVQ",
           "VectorQuantizer", "build_quantizer", "kmeans", "nearest_code", "register_quantizer",
           "rotate_onto"]
