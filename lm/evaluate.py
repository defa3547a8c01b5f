"""Held-out likelihood of the LM: negative log-likelihood per speech unit, and the unigram
baseline it must beat.

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
def unit_log_likelihoods(model, vocab: MultimodalVocab, utterances, batch_size: int = 16
                         ) -> list[tuple[float, int]]:
    """(summed log-likelihood in nats, number of scored units) of each utterance's units in
    the training format, counting only targets that are units. `utterances`: unit sequences
    (not deduplicated; deduplicated here as in training), each non-empty."""
    seqs = [formats.speech_only(vocab, u) for u in utterances]
    if any(len(s) <= 2 for s in seqs):
        raise ValueError("an utterance to score has no units")
    device = next(model.parameters()).device
    out = []
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
        logp = -torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets,
                                                  reduction="none")  # (B, T)
        out += [(float((logp * k).sum()), int(k.sum())) for logp, k in zip(logp, keep,
                                                                             strict=True)]
    return out


def speech_unit_nll(model, vocab: MultimodalVocab, utterances, batch_size: int = 16) -> dict:
    """`utterances`: 1-D unit sequences (not deduplicated; deduplicated here as in training)."""
    scores = unit_log_likelihoods(model, vocab, [u for u in utterances if len(u)], batch_size)
    if not scores:
        raise ValueError("no held-out utterances to score")
    nats = -sum(s for s, _ in scores) / sum(n for _, n in scores)
    return {"nll_per_unit": round(nats, 4), "bits_per_unit": round(nats / math.log(2), 4),
            "units": sum(n for _, n in scores), "utterances": len(scores)}


def unigram_unit_nll(train_utterances, heldout_utterances, codebook_size: int,
                     dedup: bool = True) -> dict:
    """The baseline a unit LM must beat: NLL per (deduplicated) held-out unit under the
    training units' frequencies, add-one smoothed (Laplace) so an unseen unit costs finite
    nats. Depth-1 units only (residual codes are not deduplicated and have one table a level)."""
    def units(utterances):
        for u in utterances:
            u = torch.as_tensor(u).flatten()
            yield torch.unique_consecutive(u) if dedup and len(u) else u

    counts = torch.ones(codebook_size, dtype=torch.float64)
    for u in units(train_utterances):
        counts += torch.bincount(u, minlength=codebook_size)[:codebook_size].double()
    log_p = torch.log(counts / counts.sum())
    held = torch.cat([u for u in units(heldout_utterances)])
    if not len(held):
        raise ValueError("no held-out units to score")
    if int(held.max()) >= codebook_size or int(held.min()) < 0:
        raise ValueError(f"unit id out of range [0, {codebook_size}): {int(held.max())}")
    nats = float(-log_p[held].mean())
    return {"nll_per_unit": round(nats, 4), "bits_per_unit": round(nats / math.log(2), 4),
            "units": len(held)}
