"""speechtok: modality tokenizers that turn speech (and, later, images) into discrete codes."""

from .quantizer import FSQ, QuantizerOutput, ResidualVQ, VectorQuantizer
from .speech import SpeechTokenizer, SpeechTokenizerConfig, dedup, undedup

__all__ = [
    "FSQ", "QuantizerOutput", "ResidualVQ", "SpeechTokenizer", "SpeechTokenizerConfig",
    "VectorQuantizer", "dedup", "undedup",
]
__version__ = "0.1.0"
