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
"""

from __future__ import annotations

import torch

from .loss import IGNORE


def pack(samples: list[torch.Tensor], block_size: int) -> tuple[list[list[torch.Tensor]], int]:
    """Group 1-D id tensors into blocks of at most `block_size` tokens, in order (a sample
    that does not fit starts the next block). Longer samples are cut to `block_size`; returns
    (blocks, number of samples cut)."""
    if block_size < 2:
        raise ValueError(f"block_size must be ≥ 2, got {block_size}")
    blocks: list[list[torch.Tensor]] = []
    current: list[torch.Tensor] = []
    used = cut = 0
    for s in samples:
        if len(s) > block_size:
            s, cut = s[:block_size], cut + 1
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


def collate_blocks(blocks: list[list[torch.Tensor]], block_size: int, pad_id: int
                   ) -> dict[str, torch.Tensor]:
    """Tensors for a batch of packed blocks (module docstring)."""
    b = len(blocks)
    input_ids = torch.full((b, block_size), pad_id, dtype=torch.long)
    labels = torch.full((b, block_size), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((b, block_size), dtype=torch.long)
    segment_ids = torch.zeros((b, block_size), dtype=torch.long)
    for i, block in enumerate(blocks):
        start = 0
        for seg, s in enumerate(block, 1):
            n = len(s)
            if start + n > block_size:
                raise ValueError(f"block {i} holds {start + n} tokens > block_size {block_size}")
            input_ids[i, start:start + n] = s
            labels[i, start:start + n - 1] = s[1:]
            position_ids[i, start:start + n] = torch.arange(n)
            segment_ids[i, start:start + n] = seg
            start += n
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    causal = torch.ones(block_size, block_size, dtype=torch.bool).tril()
    real = (segment_ids > 0)[:, :, None]
    eye = torch.eye(block_size, dtype=torch.bool)
    mask = (same & causal & real) | (eye & ~real)  # padding: itself only
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids,
            "segment_ids": segment_ids, "attention_mask": mask[:, None]}


def padding_share(blocks: list[list[torch.Tensor]], block_size: int) -> float:
    """Fraction of the block positions that are padding."""
    used = sum(len(s) for block in blocks for s in block)
    return 1.0 - used / (len(blocks) * block_size) if blocks else 0.0
