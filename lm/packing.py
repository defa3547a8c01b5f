"""Packing: several samples per fixed-length block, with attention kept inside each sample.

Samples are placed greedily, in order, into blocks of `block_size` tokens; the rest of a block
is padding. Each block gets:
  input_ids     (T,)    the samples back to back, then <pad>
  labels        (T,)    the next token within the same sample (IGNORE at a sample's last token
                        and on padding): already shifted, as lm.loss expects
  position_ids  (T,)    restarting at 0 for every sample
  segment_ids   (T,)    1, 2, ... per sample, 0 on padding
and the batch an `attention_mask` (B, 1, T, T) of booleans: causal and block-diagonal. With
SDPA attention, restarting `position_ids` alone does NOT stop a token from attending to the
previous sample (tests/test_lm_foundation.py shows it); the 4-D mask does. Padding attends only
to itself, so no softmax row is empty.

A sample is a 1-D id tensor (next-token labels), or a `Sample` that brings its own labels and a
bidirectional span: MaskGIT's image span, whose tokens attend to each other both ways and
predict their own masked codes (lm.formats.maskgit_image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .loss import IGNORE


@dataclass
class Sample:
    """ids (n,); labels (n,) already aligned with the logits (IGNORE where nothing is
    predicted), or None for next-token labels; bidirectional (start, end): positions that
    attend to each other both ways (None: causal throughout)."""

    ids: torch.Tensor
    labels: torch.Tensor | None = None
    bidirectional: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def cut(self, n: int) -> Sample:
        span = self.bidirectional
        if span is not None:
            span = (min(span[0], n), min(span[1], n))
        return Sample(self.ids[:n], None if self.labels is None else self.labels[:n], span)


def as_sample(s: torch.Tensor | Sample) -> Sample:
    return s if isinstance(s, Sample) else Sample(torch.as_tensor(s))


def pack(samples: list[torch.Tensor | Sample], block_size: int
         ) -> tuple[list[list[torch.Tensor | Sample]], int]:
    """Group samples (1-D id tensors or `Sample`s) into blocks of at most `block_size` tokens,
    in order (a sample that does not fit starts the next block). Longer samples are cut to
    `block_size`; returns (blocks, number of samples cut)."""
    if block_size < 2:
        raise ValueError(f"block_size must be ≥ 2, got {block_size}")
    blocks: list[list[torch.Tensor]] = []
    current: list[torch.Tensor] = []
    used = cut = 0
    for s in samples:
        if len(s) > block_size:
            s, cut = (s.cut(block_size) if isinstance(s, Sample) else s[:block_size]), cut + 1
        if len(s) == 0:
            continue
        if used + len(s) > block_size:
            blocks.append(current)
            current, used = [], 0
        current.append(s)
        used += len(s)
    if current:
        blocks.append(current)
    return blocks, cut


def collate_blocks(blocks: list[list[torch.Tensor | Sample]], block_size: int, pad_id: int
                   ) -> dict[str, torch.Tensor]:
    """Tensors for a batch of packed blocks (module docstring)."""
    b = len(blocks)
    input_ids = torch.full((b, block_size), pad_id, dtype=torch.long)
    labels = torch.full((b, block_size), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((b, block_size), dtype=torch.long)
    segment_ids = torch.zeros((b, block_size), dtype=torch.long)
    # bidirectional span id per position (0 = none): positions sharing one attend both ways
    span_ids = torch.zeros((b, block_size), dtype=torch.long)
    spans = 0
    for i, block in enumerate(blocks):
        start = 0
        for seg, s in enumerate(block, 1):
            s = as_sample(s)
            n = len(s)
            if start + n > block_size:
                raise ValueError(f"block {i} holds {start + n} tokens > block_size {block_size}")
            input_ids[i, start:start + n] = s.ids
            if s.labels is None:
                labels[i, start:start + n - 1] = s.ids[1:]
            else:
                labels[i, start:start + n] = s.labels
            position_ids[i, start:start + n] = torch.arange(n)
            segment_ids[i, start:start + n] = seg
            if s.bidirectional is not None and s.bidirectional[1] > s.bidirectional[0]:
                spans += 1
                span_ids[i, start + s.bidirectional[0]:start + s.bidirectional[1]] = spans
            start += n
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    causal = torch.ones(block_size, block_size, dtype=torch.bool).tril()
    both_ways = (span_ids[:, :, None] == span_ids[:, None, :]) & (span_ids > 0)[:, :, None]
    real = (segment_ids > 0)[:, :, None]
    eye = torch.eye(block_size, dtype=torch.bool)
    mask = (same & (causal | both_ways) & real) | (eye & ~real)  # padding: itself only
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids,
            "segment_ids": segment_ids, "attention_mask": mask[:, None]}


def padding_share(blocks: list[list[torch.Tensor]], block_size: int) -> float:
    """Fraction of the block positions that are padding."""
    used = sum(len(s) for block in blocks for s in block)
    return 1.0 - used / (len(blocks) * block_size) if blocks else 0.0
