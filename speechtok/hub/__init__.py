"""Sharing on the Hugging Face Hub: strict local loading, `push` (tokenizers and LM bundles,
without checkpoints) and the tokenizer model card."""

from .loading import QuietLocalLoading
from .model_card import write_model_card, write_tokenizer_card
from .push import IGNORE_PATTERNS, push

__all__ = ["IGNORE_PATTERNS", "QuietLocalLoading", "push", "write_model_card",
           "write_tokenizer_card"]
