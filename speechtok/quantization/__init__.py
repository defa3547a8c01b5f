"""Quantizers of (batch, length, dim) latents, one interface: `forward` returns a typed
`QuantizerOutput` (quantized, codes, loss, losses, metrics); `encode` / `decode` map latents to
codes and back. `QuantizerConfig` is the block of config fields both tokenizers share, and
`build_quantizer` makes the quantizer it names."""

from .config import QUANTIZERS, QuantizerConfig, build_quantizer
from .fsq import FSQ
from .kmeans import kmeans, nearest_code
from .output import QuantizerOutput
from .residual import ResidualVQ
from .vq import VectorQuantizer

__all__ = ["FSQ", "QUANTIZERS", "QuantizerConfig", "QuantizerOutput", "ResidualVQ",
           "VectorQuantizer", "build_quantizer", "kmeans", "nearest_code"]
