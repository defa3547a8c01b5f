"""Held-out likelihood of the LM: negative log-likelihood per speech unit.

GSLM reports its unit LMs by how well they predict held-out units; we give the mean NLL (nats
and bits) per deduplicated unit of held-out utterances in the training format (`<bos> <boa>
units <eoa> <eos>`), counting only targets that are units (not <eoa> / <eos>).
"""

from __future__ import annotations

import math

import torch

from . import formats
from .vocab import AUDIO, MultimodalVocab


@torch.inference_mode()
def speech_unit_nll(model, vocab: MultimodalVocab, utterances, batch_size: int = 16) -> dict:
    """`utterances`: 1-D unit sequences (not deduplicated; deduplicated here as in training)."""
    seqs = [formats.speech_only(vocab, u) for u in utterances if len(u)]
    if not seqs:
        raise ValueError("no held-out utterances to score")
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(seqs), batch_size):
        chunk = seqs[i: i + batch_size]
        width = max(map(len, chunk))
        ids = torch.full((len(chunk), width), vocab.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(chunk):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        targets = ids[:, 1:]
        keep = (mask[:, 1:] == 1) & (vocab.modality(targets.cpu()).to(device) == AUDIO)
        nll = torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum")
        total += float(nll)
        count += int(keep.sum())
    nats = total / count
    return {"nll_per_unit": round(nats, 4), "bits_per_unit": round(nats / math.log(2), 4),
            "units": count, "utterances": len(seqs)}
