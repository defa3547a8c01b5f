"""The image tokenizer: images ↔ grids of discrete codes (a VQGAN), with its image I/O, data
sources, losses, discriminator, trainer and evaluation."""

from .configuration import ImageTokenizerConfig
from .modeling import ImageTokenizer, ImageTokenizerOutput

__all__ = ["ImageTokenizer", "ImageTokenizerConfig", "ImageTokenizerOutput"]
