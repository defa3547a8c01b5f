"""How the speech trainer uses the content objectives (speechtok.speech.content): which of them
a run has, their heads and weights, the batches that carry their labels, and their terms.

Kept apart from train.py so that the step stays readable and a trainer without content
objectives builds none of this.
"""

from __future__ import annotations

import torch

from speechtok.speech.content import (
    ContentHeads,
    ContentLabels,
    consistency_loss,
    phone_inventory,
)


class ContentObjectives:
    """The content objectives of one run: `heads` (None when only consistency is on),
    `labels` (what the batches need to carry), `weights` ({term: weight}) and `consistency`
    (whether the model must also return the clean copy's units)."""

    def __init__(self, heads: ContentHeads | None, labels: ContentLabels | None,
                 weights: dict[str, float], quantizer, phones: list[str]):
        self.heads, self.labels, self.weights = heads, labels, weights
        self.quantizer, self.phones = quantizer, phones
        self.consistency = weights.get("consistency", 0.0) > 0
        self.notes: list[str] = []  # objectives asked for that the data cannot feed

    @classmethod
    def for_training(cls, cfg, model_cfg, quantizer, train_src) -> ContentObjectives | None:
        """The objectives `cfg` (a SpeechTrainConfig) turns on that the data can feed: phone
        classification where items have `phones`, CTC where they have `text`, none where they
        have neither (said in `notes`); None when none is left. A quantizer the consistency
        term cannot use is an error."""
        if cfg.consistency_weight and not hasattr(quantizer, "commitment_to"):
            raise ValueError(f"consistency_weight needs a codebook quantizer (vq or rvq), not "
                             f"{model_cfg.quantizer!r}")
        items = getattr(train_src, "items", None)  # a stream's items are not known ahead
        notes, phones = [], []
        if cfg.phone_weight:
            phones = phone_inventory(items or [])
            if not phones:
                notes.append("phone_weight is set but no training item has 'phones' alignments "
                             "([[phone, start_s, end_s], ...] in metadata.jsonl"
                             + ("" if items is not None else "; a stream is not read ahead")
                             + "): the phone objective is off")
        # the same rule as AudioSource.utterance_batch's: a non-empty text
        ctc = bool(cfg.ctc_weight) and any(isinstance(item.meta.get("text"), str)
                                           and item.meta["text"].strip() for item in items or [])
        if cfg.ctc_weight and not ctc:
            notes.append("ctc_weight is set but no training item has a 'text'"
                         + ("" if items is not None else " (a stream is not read ahead)")
                         + ": the CTC objective is off")
        weights = {k: w for k, w in (("phone", cfg.phone_weight if phones else 0),
                                     ("ctc", cfg.ctc_weight if ctc else 0),
                                     ("consistency", cfg.consistency_weight)) if w}
        if not weights:
            for note in notes:
                print(f"note: {note}")
            return None
        heads = labels = None
        if phones or ctc:
            heads = ContentHeads(model_cfg.latent_dim, len(phones), ctc=ctc)
            labels = ContentLabels({p: i for i, p in enumerate(phones)}, model_cfg.sample_rate,
                                   model_cfg.total_stride)
        weights["unused"] = 1.0  # the heads' zero that keeps their unused parameters in the graph
        objectives = cls(heads, labels, weights, quantizer, phones)
        objectives.notes = notes
        return objectives

    def describe(self) -> str:
        parts = [f"{k} ×{w:g}" + (f" ({len(self.phones)} phones)" if k == "phone" else "")
                 for k, w in self.weights.items() if k != "unused"]
        return "\n".join([f"note: {n}" for n in self.notes]
                         + ["content objectives: " + ", ".join(parts)])

    def losses(self, out, labels: dict) -> dict[str, torch.Tensor]:
        """The content terms of one forward's output (SpeechTokenizerOutput)."""
        terms = {}
        if self.heads is not None:
            # with "phone_acc", a metric: weights name only the losses
            terms.update(self.heads(out.quantizer.quantized, labels))
        if self.consistency:
            terms["consistency"] = consistency_loss(self.quantizer, out.latents, out.clean_codes)
        return terms

    def metrics(self, out, labels: dict) -> dict[str, torch.Tensor]:
        """Training metrics: the share of frames whose unit is the clean copy's (agreement)."""
        metrics = {}
        if self.consistency:
            codes = out.quantizer.codes
            codes = codes[:, 0] if codes.dim() == 3 else codes
            metrics["agreement"] = (codes == out.clean_codes).float().mean().detach()
        return metrics


class SpeechBatches:
    """Step s's batch as a dict (picklable, for the loader's workers): random crops
    {"wav"} (+ "phones" when `labels`), or, one step in `ctc_every` when CTC is on, whole
    utterances with their character targets (AudioSource.utterance_batch)."""

    def __init__(self, source, labels: ContentLabels | None, cfg, segment: int, stride: int):
        self.source, self.labels, self.segment = source, labels, segment
        self.batch_size, self.seed = cfg.batch_size, cfg.seed
        self.ctc_every = cfg.ctc_every if cfg.ctc_weight else 0
        self.ctc_batch_size = cfg.ctc_batch_size
        max_samples = int(cfg.ctc_max_seconds * source.sample_rate)
        self.ctc_max_samples = max(stride, max_samples - max_samples % stride)

    def __call__(self, step: int, process_index: int = 0) -> dict:
        if self.labels is None:
            return {"wav": self.source.batch(step, self.batch_size, self.segment, self.seed,
                                             process_index)}
        if self.ctc_every and step % self.ctc_every == 0:
            return self.source.utterance_batch(step, self.ctc_batch_size, self.ctc_max_samples,
                                               self.seed, process_index, self.labels)
        return self.source.labelled_batch(step, self.batch_size, self.segment, self.seed,
                                          process_index, self.labels)


def retime_labels(labels: dict, factor: float, frames: int) -> dict:
    """Labels of a batch played `factor` times faster (speed perturbation) with `frames`
    frames: frame j now holds what frame ⌊j · factor⌋ held; speech spans shrink alike."""
    out = dict(labels)
    if "phones" in labels:
        old = labels["phones"].shape[-1]
        src = (torch.arange(frames) * factor).long().clamp(max=old - 1)
        out["phones"] = labels["phones"][:, src]
    if "frames" in labels:
        out["frames"] = torch.ceil(labels["frames"] / factor).long().clamp(max=frames)
    return out
