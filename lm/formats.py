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
    caption → image (MaskGIT)    <bos> text <boi> i <mask> i <mask> ... <eoi>: the image span
                                 attends both ways, a cosine-scheduled share of its codes is
                                 replaced by <mask>, and each <mask> predicts its own code
                                 (Chang et al. 2022); the text keeps next-token labels

Speech units are deduplicated first by default (GSLM, Lakhotia et al. 2021); image grids are
flattened in raster order. Several codes per position (a residual quantizer) come as flat
depth-first sequences (lm.vocab); such speech codes are acoustic codes, one position a frame,
and are never deduplicated (AudioLM's acoustic stage keeps every frame too).
"""

from __future__ import annotations

import math
import random

import torch

from .loss import IGNORE
from .packing import Sample
from .vocab import MultimodalVocab


def _audio(vocab: MultimodalVocab, units, dedup: bool) -> list[int]:
    units = torch.as_tensor(units).flatten()
    if dedup and len(units) and vocab.audio_dedup:
        units = torch.unique_consecutive(units)
    return [vocab.boa_id, *vocab.audio_ids(units).tolist(), vocab.eoa_id]


def _image(vocab: MultimodalVocab, grid) -> list[int]:
    return [vocab.boi_id, *vocab.image_ids(torch.as_tensor(grid).flatten()).tolist(),
            vocab.eoi_id]


def speech_only(vocab: MultimodalVocab, units, dedup: bool = True) -> list[int]:
    return [vocab.bos_id, *_audio(vocab, units, dedup), vocab.eos_id]


def _text(vocab: MultimodalVocab, text: str | list[int]) -> list[int]:
    """A text's ids; already-encoded ids (a list, e.g. a caption with noise) pass through."""
    return list(text) if isinstance(text, list) else vocab.encode_text(text)


def caption_to_image(vocab: MultimodalVocab, caption: str | list[int], grid) -> list[int]:
    return [vocab.bos_id, *_text(vocab, caption), *_image(vocab, grid), vocab.eos_id]


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


def cosine_mask_count(n: int, rng: random.Random) -> int:
    """How many of `n` codes a MaskGIT training sample masks: ceil(cos(π/2 · r) · n) with r
    uniform in [0, 1) (the cosine schedule, Chang et al. 2022 §3.2), at least 1."""
    return max(1, math.ceil(math.cos(math.pi / 2 * rng.random()) * n))


def maskgit_image(vocab: MultimodalVocab, caption: str | list[int], grid, masked: torch.Tensor
                  ) -> Sample:
    """The MaskGIT sample of caption → image (module docstring): `masked` (h·w,) bool marks the
    codes replaced by <mask>; they alone carry image labels, their own codes."""
    codes = vocab.image_ids(torch.as_tensor(grid).flatten())
    masked = torch.as_tensor(masked, dtype=torch.bool).flatten()
    if masked.shape != codes.shape:
        raise ValueError(f"masked must have one flag per code ({len(codes)}), got "
                         f"{tuple(masked.shape)}")
    text = torch.tensor([vocab.bos_id, *_text(vocab, caption), vocab.boi_id],
                        dtype=torch.long)
    ids = torch.cat([text, codes.masked_fill(masked, vocab.mask_id),
                     torch.tensor([vocab.eoi_id])])
    labels = torch.full_like(ids, IGNORE)
    labels[: len(text) - 1] = text[1:]  # the caption (and <boi>) as next-token prediction
    start = len(text)
    labels[start:start + len(codes)] = torch.where(masked, codes, IGNORE)
    return Sample(ids, labels, (start, start + len(codes)))


def noisy_text(vocab: MultimodalVocab, text: str, rate: float, rng) -> list[int]:
    """The text's ids with each replaced, with probability `rate`, by a uniformly drawn
    non-special text id: word-level noise in the spirit of word dropout (Iyyer et al. 2015) and
    BERT's random-token replacement, so that a caption with words the LM never saw (a new
    wording, an unknown font name) reads as noise around the request rather than as an input
    it has no behaviour for."""
    ids = vocab.encode_text(text)
    if not rate or not ids:
        return ids
    specials = set(vocab.special_ids.values())
    size = vocab.layout["text_size"]
    out = []
    for i in ids:
        if rng.random() < rate:
            i = rng.randrange(size)
            while i in specials:
                i = rng.randrange(size)
        out.append(i)
    return out


def random_mask(n: int, rng: random.Random) -> torch.Tensor:
    """(n,) bool: `cosine_mask_count(n)` positions chosen uniformly."""
    chosen = rng.sample(range(n), cosine_mask_count(n, rng))
    flags = torch.zeros(n, dtype=torch.bool)
    flags[chosen] = True
    return flags
