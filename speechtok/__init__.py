"""speechtok: modality tokenizers that turn speech and images into discrete codes.

Subpackages by concern: `quantization` (the quantizers, one interface), `speech` and `image`
(each tokenizer with its configuration, modules, I/O, data, losses, trainer and evaluation),
`training` (the loop, accelerator, schedule, checkpoints, config parsing), `hub` (push and model
cards), `metrics`. docs/ARCHITECTURE.md draws how they fit together.
"""

from .image import ImageTokenizer, ImageTokenizerConfig
from .quantization import FSQ, QuantizerConfig, QuantizerOutput, ResidualVQ, VectorQuantizer
from .speech import SpeechTokenizer, SpeechTokenizerConfig, dedup, undedup

__all__ = [
    "FSQ", "ImageTokenizer", "ImageTokenizerConfig", "QuantizerConfig", "QuantizerOutput",
    "ResidualVQ", "SpeechTokenizer", "SpeechTokenizerConfig", "VectorQuantizer", "dedup",
    "undedup",
]
__version__ = "0.1.0"
