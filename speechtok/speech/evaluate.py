"""Held-out evaluation of a speech tokenizer: codebook use, bitrate, reconstruction, phones.

The reconstruction distance is measured on the log-mel (the decoder's output before
Griffin-Lim), so it compares models without the vocoder's phase noise. Phone purity and PNMI
(HuBERT, Hsu et al. 2021, Sec. IV) need frame-level phone labels: the built-in corpus stores
flite's alignments in `metadata.jsonl` (`"phones": [[phone, start, end], ...]`).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from speechtok.metrics import (
    bitrate,
    cluster_purity,
    codebook_usage,
    frame_phone_labels,
    perplexity,
    phone_purity,
    pnmi,
)
from speechtok.speech.data import AudioSource
from speechtok.speech.losses import log_mel_l1


@torch.no_grad()
def evaluate_speech(model, source: AudioSource, max_items: int | None = None,
                    progress: bool = False) -> dict[str, float]:
    """Metrics of `model` over (up to `max_items` of) `source`, as a flat dict of floats."""
    was_training = model.training
    model.eval()
    n = len(source) if max_items is None else min(len(source), max_items)
    codes, labels, mel, frames = [], [], [], 0
    for i in tqdm(range(n), disable=not progress, desc="evaluate"):
        wav = model.pad_to_stride(source.load(i)[None].to(model.device))
        out = model(wav)
        unit = out.quantizer.codes
        if unit.dim() == 3:  # RVQ: phone metrics and usage on the first codebook
            unit = unit[:, 0]
        unit = unit.flatten().cpu()
        codes.append(unit)
        frames += len(unit)
        mel.append(float(log_mel_l1(out.log_mel, out.target_log_mel)))
        phones = source.items[i].meta.get("phones")
        if phones:
            labels.append(frame_phone_labels(phones, len(unit), model.frame_rate))
        elif labels:
            raise ValueError(f"item {source.items[i].name} has no phone labels but others do")
    model.train(was_training)
    all_codes = torch.cat(codes).numpy()
    K = model.config.codebook_size
    rate = bitrate(model.frame_rate, K, all_codes)
    metrics = {
        "items": n,
        "seconds": frames / model.frame_rate,
        "codebook_usage": codebook_usage(all_codes, K),
        "perplexity": perplexity(all_codes, K),
        "bitrate_nominal": rate.nominal,
        "bitrate_empirical": rate.empirical,
        "mel_l1": sum(mel) / n,
    }
    if labels:
        flat_labels = [p for row in labels for p in row]
        metrics.update(
            phone_purity=phone_purity(all_codes, flat_labels),
            cluster_purity=cluster_purity(all_codes, flat_labels),
            pnmi=pnmi(all_codes, flat_labels),
        )
    return metrics
