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

    @classmethod
    def for_training(cls, cfg, model_cfg, quantizer, train_src) -> ContentObjectives:
        """The objectives `cfg` (a SpeechTrainConfig) turns on, checked against the data and
        the quantizer: a clear error when one cannot work."""
        phones: list[str] = []
        if cfg.phone_weight or cfg.ctc_weight:
            if not hasattr(train_src, "items"):
                raise ValueError("phone_weight and ctc_weight need labelled items from a folder or "
                                 "a saved dataset; a streamed dataset is not supported")
        if cfg.phone_weight:
            phones = phone_inventory(train_src.items)
            if not phones:
                raise ValueError("phone_weight > 0 but no training item has 'phones' alignments "
                                 "([[phone, start_s, end_s], ...] in metadata.jsonl); use "
                                 "ctc_weight for data with text only")
        if cfg.ctc_weight and not any(isinstance(item.meta.get("text"), str)
                                      for item in train_src.items):
            raise ValueError("ctc_weight > 0 but no training item has a 'text'")
        if cfg.consistency_weight and not hasattr(quantizer, "commitment_to"):
            raise ValueError(f"consistency_weight needs a codebook quantizer (vq or rvq), not "
                             f"{model_cfg.quantizer!r}")
        heads = labels = None
        if cfg.phone_weight or cfg.ctc_weight:
            heads = ContentHeads(model_cfg.latent_dim, len(phones), ctc=cfg.ctc_weight > 0)
            labels = ContentLabels({p: i for i, p in enumerate(phones)}, model_cfg.sample_rate,
                                   model_cfg.total_stride)
        weights = {k: w for k, w in (("phone", cfg.phone_weight), ("ctc", cfg.ctc_weight),
                                     ("consistency", cfg.consistency_weight)) if w}
        weights["unused"] = 1.0  # the heads' zero that keeps their unused parameters in the graph
        return cls(heads, labels, weights, quantizer, phones)

    def describe(self) -> str:
        parts = [f"{k} ×{w:g}" for k, w in self.weights.items() if k != "unused"]
        if self.phones:
            parts[0] += f" ({len(self.phones)} phones)"
        return "content objectives: " + ", ".join(parts)

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
