"""Sample formats: how one training example becomes one id sequence.

    speech only (GSLM unit LM)   <bos> <boa> a a a <eoa> <eos>
    caption → image (DALL-E)     <bos> text <boi> i i i <eoi> <eos>
    image → caption              <bos> <boi> i i i <eoi> text <eos>
    speech → text (ASR-like)     <bos> <boa> a a a <eoa> text <eos>      (VoxLM)
    text → speech (TTS-like)     <bos> text <boa> a a a <eoa> <eos>
    text only                    <bos> text <eos>
    causal-masked (CM3)          any of the above with one span replaced by <mask> and moved to
                                 the end after a second <mask>, so the model also learns to
                                 infill (Aghajanyan et al. 2022)

Speech units are deduplicated first by default (GSLM, Lakhotia et al. 2021); image grids are
flattened in raster order.
"""

from __future__ import annotations

import random

import torch

from .vocab import MultimodalVocab


def _audio(vocab: MultimodalVocab, units, dedup: bool) -> list[int]:
    units = torch.as_tensor(units).flatten()
    if dedup and len(units):
        units = torch.unique_consecutive(units)
    return [vocab.boa_id, *vocab.audio_ids(units).tolist(), vocab.eoa_id]


def _image(vocab: MultimodalVocab, grid) -> list[int]:
    return [vocab.boi_id, *vocab.image_ids(torch.as_tensor(grid).flatten()).tolist(),
            vocab.eoi_id]


def speech_only(vocab: MultimodalVocab, units, dedup: bool = True) -> list[int]:
    return [vocab.bos_id, *_audio(vocab, units, dedup), vocab.eos_id]


def caption_to_image(vocab: MultimodalVocab, caption: str, grid) -> list[int]:
    return [vocab.bos_id, *vocab.encode_text(caption), *_image(vocab, grid), vocab.eos_id]


def image_to_caption(vocab: MultimodalVocab, grid, caption: str) -> list[int]:
    return [vocab.bos_id, *_image(vocab, grid), *vocab.encode_text(caption), vocab.eos_id]


def speech_to_text(vocab: MultimodalVocab, units, text: str, dedup: bool = True) -> list[int]:
    return [vocab.bos_id, *_audio(vocab, units, dedup), *vocab.encode_text(text), vocab.eos_id]


def text_to_speech(vocab: MultimodalVocab, text: str, units, dedup: bool = True) -> list[int]:
    return [vocab.bos_id, *vocab.encode_text(text), *_audio(vocab, units, dedup), vocab.eos_id]


def text_only(vocab: MultimodalVocab, text: str) -> list[int]:
    return [vocab.bos_id, *vocab.encode_text(text), vocab.eos_id]


def causal_masked(vocab: MultimodalVocab, ids: list[int], start: int, end: int) -> list[int]:
    """CM3: `ids` (from a format above, ending in <eos>) with ids[start:end] replaced by <mask>
    and appended after a second <mask>: prefix <mask> suffix <mask> span <eos>."""
    if not (1 <= start < end <= len(ids) - 1) or ids[-1] != vocab.eos_id:
        raise ValueError(f"span [{start}, {end}) must lie inside the sample body "
                         f"(1 .. {len(ids) - 1}) of a sequence ending in <eos>")
    m = vocab.mask_id
    return [*ids[:start], m, *ids[end:-1], m, *ids[start:end], vocab.eos_id]


def uncausal_masked(vocab: MultimodalVocab, ids: list[int]) -> list[int]:
    """The original sequence of a `causal_masked` one (to check, and to display)."""
    m = vocab.mask_id
    first = ids.index(m)
    second = ids.index(m, first + 1)
    return [*ids[:first], *ids[second + 1:-1], *ids[first + 1:second], vocab.eos_id]


def random_span(length: int, rng: random.Random, max_fraction: float = 0.5
                ) -> tuple[int, int]:
    """A span [start, end) of a sample body 1 .. length-1 (never <bos> or <eos>), at most
    `max_fraction` of it long."""
    body = length - 2
    if body < 1:
        raise ValueError("sample too short to mask a span")
    n = rng.randint(1, max(1, int(body * max_fraction)))
    start = rng.randint(1, length - 1 - n)
    return start, start + n
