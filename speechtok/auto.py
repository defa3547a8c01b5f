"""Load whichever tokenizer a saved folder (or an `hf:` name) holds: speechtok.tokenizer."""

from speechtok.tokenizer.registry import load_tokenizer, tokenizer_kind

__all__ = ["load_tokenizer", "tokenizer_kind"]
