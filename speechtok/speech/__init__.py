"""The speech tokenizer: 16 kHz speech ↔ about 50 Hz discrete units (a 1-D conv VQ-VAE), with
its audio I/O, data sources, losses, trainer and evaluation."""

from .configuration import SpeechTokenizerConfig
from .modeling import SpeechTokenizer, SpeechTokenizerOutput
from .units import dedup, undedup

__all__ = ["SpeechTokenizer", "SpeechTokenizerConfig", "SpeechTokenizerOutput", "dedup",
           "undedup"]
