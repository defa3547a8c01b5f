"""One interface for every tokenizer the LM can use (interface), the shape of codes (layout),
the registries of tokenizers and modalities (registry, media), and the adapters: k-means units
over a self-supervised model's layer (kmeans) and transformers' pretrained codecs and image
VQs (hf)."""

from .interface import MediaTokenizer
from .layout import CodeLayout, deinterleave, interleave
from .media import media_for
from .registry import HF_PREFIX, load_tokenizer, tokenizer_kind

__all__ = ["HF_PREFIX", "CodeLayout", "MediaTokenizer", "deinterleave", "interleave",
           "load_tokenizer", "media_for", "tokenizer_kind"]
