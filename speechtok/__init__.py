"""speechtok: modality tokenizers that turn speech and images into discrete codes."""

from .image import ImageTokenizer, ImageTokenizerConfig
from .quantizer import FSQ, QuantizerOutput, ResidualVQ, VectorQuantizer
from .speech import SpeechTokenizer, SpeechTokenizerConfig, dedup, undedup

__all__ = [
    "FSQ", "ImageTokenizer", "ImageTokenizerConfig", "QuantizerOutput", "ResidualVQ",
    "SpeechTokenizer", "SpeechTokenizerConfig", "VectorQuantizer", "dedup", "undedup",
]
__version__ = "0.1.0"
