"""Content objectives: put what is said into the units, not only how it sounds.

Reconstruction alone lets a VQ-VAE spend its codes on the channel and the voice. Three
training-time terms push the quantized latents towards the words, after PAST (Har-Tuv et al.
2025: a phoneme-classification head and a character CTC head on the first codebook's output,
beside reconstruction) and Gat et al. 2022 (augmentation-invariant discrete units):

- **phone**: frame-level cross-entropy of a linear head over the quantized latents against
  forced phone alignments (`metadata.jsonl` `phones`: `[[phone, start_s, end_s], ...]`; the
  built-in corpus has flite's). Frames without a label (padding, items with no alignment) are
  ignored.
- **ctc**: CTC (Graves et al. 2006) of a small BiLSTM head over the quantized latents against
  the item's `text` as characters, where the data has text but no alignment (a user's own
  recordings, LibriSpeech). CTC needs the whole utterance, so it is trained on steps whose
  batch is whole utterances (`utterance_batch`), one step in `ctc_every`.
- **consistency**: the encoder's output for the degraded copy (noise, reverb, telephone, gain,
  VTLP) is committed to the clean copy's units (squared distance to their codes), while the
  decoder still reconstructs the clean signal.

The heads live outside the tokenizer (`ContentHeads`): a saved tokenizer is the same with or
without them, and encodes and decodes as before. Labels are made in the data loader's workers
(`crop_phone_labels`, `char_ids`), so the step only gathers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechtok.metrics.wer import normalize

IGNORE = -100  # label of a frame without a phone (F.cross_entropy's ignore_index)
# Characters of normalised text (lower case, numbers spelled out, apostrophes kept); id 0 is
# the CTC blank.
CHARACTERS = " '" + "abcdefghijklmnopqrstuvwxyz"
_CHAR_ID = {c: i + 1 for i, c in enumerate(CHARACTERS)}


def char_ids(text: str) -> list[int]:
    """`text` as CTC targets: normalised like WER references ("Press 1." → "press one"),
    characters outside a-z, space and apostrophe dropped; ids start at 1 (0 is the blank)."""
    return [_CHAR_ID[c] for c in " ".join(normalize(text)) if c in _CHAR_ID]


def phone_inventory(items: Sequence) -> list[str]:
    """The sorted phone set of `items`' alignments (`meta["phones"]`); empty without any."""
    return sorted({str(p[0]) for item in items for p in item.meta.get("phones") or ()})


def crop_phone_labels(phones: Sequence[Sequence] | None, shift_s: float, num_frames: int,
                      frame_rate: float, index: dict[str, int],
                      duration_s: float | None = None) -> torch.Tensor:
    """Phone ids `(num_frames,)` of a crop that starts `shift_s` seconds into the utterance
    (negative: the utterance starts `-shift_s` into a zero-padded crop). Frame i takes the
    phone around its centre; frames outside the alignment (padding, or past `duration_s`)
    and phones missing from `index` get IGNORE."""
    labels = torch.full((num_frames,), IGNORE, dtype=torch.long)
    if not phones:
        return labels
    ends = np.asarray([float(p[2]) for p in phones])
    start0 = float(phones[0][1])
    centres = shift_s + (np.arange(num_frames) + 0.5) / frame_rate
    end = ends[-1] if duration_s is None else min(ends[-1], duration_s)
    inside = (centres >= start0) & (centres < end)
    # side="right": a centre exactly on a boundary belongs to the phone that starts there
    which = np.minimum(np.searchsorted(ends, centres, side="right"), len(phones) - 1)
    for i in np.flatnonzero(inside):
        labels[i] = index.get(str(phones[which[i]][0]), IGNORE)
    return labels


class ContentLabels:
    """Makes a crop's labels in the loader's workers (picklable): frame phone ids from
    `meta["phones"]` through `phone_index`, and CTC character ids from `meta["text"]`.
    `stride`: samples per unit."""

    def __init__(self, phone_index: dict[str, int], sample_rate: int, stride: int):
        self.phone_index, self.sample_rate, self.stride = phone_index, sample_rate, stride

    def phones(self, meta: dict, shift: int, segment: int) -> torch.Tensor:
        """(segment // stride,) phone ids of a `segment`-sample crop starting `shift` samples
        into the utterance (see crop_phone_labels)."""
        return crop_phone_labels(meta.get("phones"), shift / self.sample_rate,
                                 segment // self.stride, self.sample_rate / self.stride,
                                 self.phone_index, meta.get("duration"))

    @staticmethod
    def characters(meta: dict) -> list[int]:
        text = meta.get("text")
        return char_ids(text) if isinstance(text, str) else []


class ContentHeads(nn.Module):
    """The training-time heads over quantized latents `(B, N, D)`: a linear phone classifier
    (`num_phones` > 0) and a one-layer BiLSTM + linear CTC head over `CHARACTERS` + blank
    (`ctc`), as PAST's heads on the first codebook.

    `forward` runs every head on every batch, so that every parameter takes part in every
    step, as DistributedDataParallel requires: a head without labels in the batch adds 0 (with
    a graph) to the term "unused" instead of logging a loss it did not compute."""

    def __init__(self, dim: int, num_phones: int = 0, ctc: bool = False, hidden: int = 128):
        super().__init__()
        self.phone = nn.Linear(dim, num_phones) if num_phones else None
        self.ctc_rnn = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True) if ctc else None
        self.ctc_out = nn.Linear(2 * hidden, len(CHARACTERS) + 1) if ctc else None

    def forward(self, quantized: torch.Tensor, labels: dict) -> dict[str, torch.Tensor]:
        """{"phone", "phone_acc"} and/or {"ctc"} of one batch; `labels` as the data sources
        make them ("phones" (B, N); "frames", "targets", "target_lengths" on CTC steps)."""
        terms = {}
        if self.phone is not None:
            logits = self.phone(quantized).float()  # (B, N, P)
            phones = labels.get("phones")
            if phones is None or not bool((phones != IGNORE).any()):
                terms["unused"] = terms.get("unused", 0.0) + logits.sum() * 0.0
            else:
                terms["phone"] = F.cross_entropy(logits.transpose(1, 2), phones,
                                                 ignore_index=IGNORE)
                keep = phones != IGNORE
                terms["phone_acc"] = (logits.argmax(-1)[keep] == phones[keep]).float().mean()
        if self.ctc_rnn is not None:
            hidden, _ = self.ctc_rnn(quantized.float())
            log_probs = self.ctc_out(hidden).float().log_softmax(-1)  # (B, N, C)
            lengths = labels.get("target_lengths")
            if lengths is None or not bool((lengths > 0).any()):
                terms["unused"] = terms.get("unused", 0.0) + log_probs.sum() * 0.0
            else:
                keep = lengths > 0
                frames = labels["frames"].clamp(max=log_probs.shape[1])
                loss = F.ctc_loss(log_probs[keep].transpose(0, 1), labels["targets"][keep],
                                  frames[keep], lengths[keep], blank=0, reduction="none",
                                  zero_infinity=True)
                # per character, as ASR recipes do: long and short utterances count alike
                terms["ctc"] = (loss / lengths[keep]).mean()
        return terms


def consistency_loss(quantizer: nn.Module, latents: torch.Tensor, target_codes: torch.Tensor
                     ) -> torch.Tensor:
    """The degraded copy's latents `(B, N, D)` committed to the clean copy's units `(B, N)`:
    the squared distance to those codes in the quantizer's lookup space (Gat et al. 2022 train
    on augmented copies against the clean copy's units). A cross-entropy over the codebook
    instead collapsed the codebook to a handful of codes within 100 steps (usage 1 %)."""
    return quantizer.commitment_to(latents, target_codes)
