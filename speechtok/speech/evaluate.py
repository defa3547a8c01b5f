"""Held-out evaluation of a speech tokenizer: codebook use, bitrate, reconstruction, phones;
unit agreement under degradation; resynthesis quality (STOI, ESTOI, PESQ, MCD).

The reconstruction distance is measured on the log-mel (the decoder's output before
Griffin-Lim), so it compares models without the vocoder's phase noise. Phone purity and PNMI
(HuBERT, Hsu et al. 2021, Sec. IV) need frame-level phone labels: the built-in corpus stores
flite's alignments in `metadata.jsonl` (`"phones": [[phone, start, end], ...]`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
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
from speechtok.metrics.speech_quality import speech_quality
from speechtok.speech.augment import DEGRADATIONS, degrade
from speechtok.speech.data import AudioSource
from speechtok.speech.io import save_audio
from speechtok.speech.losses import log_mel_l1


@torch.no_grad()
def evaluate_speech(model, source: AudioSource, max_items: int | None = None,
                    progress: bool = False) -> dict[str, float]:
    """Metrics of `model` over (up to `max_items` of) `source`, as a flat dict of floats."""
    was_training = model.training
    model.eval()
    n = len(source) if max_items is None else min(len(source), max_items)
    codes, labelled_codes, labels, mel, frames = [], [], [], [], 0
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
        if phones:  # phone metrics over the items that have alignments (real speech has none)
            labels.append(frame_phone_labels(phones, len(unit), model.frame_rate))
            labelled_codes.append(unit)
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
        labelled = torch.cat(labelled_codes).numpy()
        metrics.update(
            phone_purity=phone_purity(labelled, flat_labels),
            cluster_purity=cluster_purity(labelled, flat_labels),
            pnmi=pnmi(labelled, flat_labels),
            phone_labelled_items=len(labels),
        )
    return metrics


@torch.no_grad()
def evaluate_units(tok, source: AudioSource, max_items: int | None = None,
                   progress: bool = False) -> dict[str, float]:
    """What any speech tokenizer's codes say about the words (through its `encode` and
    `layout` only: k-means units, a pretrained codec): codebook usage, perplexity and bitrate
    of the first codebook, and, where `source` has phone alignments, phone purity, cluster
    purity and PNMI (Hsu et al. 2021, HuBERT §IV-D)."""
    layout = tok.layout
    n = len(source) if max_items is None else min(len(source), max_items)
    codes, labelled_codes, labels, frames = [], [], [], 0
    for i in tqdm(range(n), disable=not progress, desc="evaluate"):
        unit = tok.encode(source.load(i)[None])[0].cpu()
        unit = (unit[0] if unit.dim() == 2 else unit).flatten()  # first codebook
        codes.append(unit)
        frames += len(unit)
        phones = source.items[i].meta.get("phones")
        if phones:
            labels.append(frame_phone_labels(phones, len(unit), layout.frame_rate))
            labelled_codes.append(unit)
    all_codes = torch.cat(codes).numpy()
    K = layout.codebook_size
    rate = bitrate(layout.frame_rate, K, all_codes)
    metrics = {"items": n, "seconds": frames / layout.frame_rate,
               "codebook_usage": codebook_usage(all_codes, K),
               "perplexity": perplexity(all_codes, K),
               "bitrate_nominal": layout.bitrate,  # every codebook
               "bitrate_empirical_first_codebook": rate.empirical}
    if labels:
        flat_labels = [p for row in labels for p in row]
        labelled = torch.cat(labelled_codes).numpy()
        metrics.update(phone_purity=phone_purity(labelled, flat_labels),
                       cluster_purity=cluster_purity(labelled, flat_labels),
                       pnmi=pnmi(labelled, flat_labels), phone_labelled_items=len(labels))
    return metrics


@torch.no_grad()
def evaluate_unit_agreement(model, source: AudioSource, max_items: int | None = None,
                            progress: bool = False) -> dict[str, float]:
    """Share of frames whose unit stays the same when the utterance is degraded (10 dB noise,
    a reverberant room, the 8 kHz band: augment.DEGRADATIONS), pooled over (up to
    `max_items` of) `source`: how much the units depend on the channel rather than the
    speech."""
    n = len(source) if max_items is None else min(len(source), max_items)
    same = dict.fromkeys(DEGRADATIONS, 0)
    frames = 0
    for i in tqdm(range(n), disable=not progress, desc="unit agreement"):
        wav = source.load(i)[None]
        clean = model.encode(wav, model.sample_rate)
        frames += clean.numel()
        for condition in DEGRADATIONS:
            degraded = model.encode(degrade(wav, condition, model.sample_rate, seed=i),
                                    model.sample_rate)
            same[condition] += int((clean == degraded).sum())
    return {f"unit_agreement_{c}": same[c] / frames for c in DEGRADATIONS}


@torch.no_grad()
def evaluate_resynthesis(model, source: AudioSource, max_items: int | None = None,
                         vocoder: str = "auto", progress: bool = False,
                         save_to: str | Path | None = None) -> dict[str, float]:
    """STOI, ESTOI, wide-band PESQ and MCD of encode → decode against the original, averaged
    over (up to `max_items` of) `source`, and the decoder's real-time factor.

    Each utterance is decoded in its own voice (the speaker vector of the original: speech
    resynthesis as in Polyak et al. 2021). `vocoder`: "auto" (the learned decoder when the
    tokenizer has one), "griffin_lim" or "learned". With `save_to`, the resyntheses are
    written there as wav files named after the items.
    """
    n = len(source) if max_items is None else min(len(source), max_items)
    scores: dict[str, list[float]] = {}
    decode_seconds = audio_seconds = 0.0
    for i in tqdm(range(n), disable=not progress, desc=f"resynthesis ({vocoder})"):
        wav = source.load(i)
        units = model.encode(wav[None], model.sample_rate)
        speaker = (model.speaker_embedding(wav[None], model.sample_rate)
                   if model.speaker_encoder is not None else None)
        t0 = time.perf_counter()
        out = model.decode(units, speaker=speaker, vocoder=vocoder)[0, :len(wav)].cpu()
        decode_seconds += time.perf_counter() - t0
        audio_seconds += len(wav) / model.sample_rate
        if save_to is not None:
            save_audio(Path(save_to) / f"{Path(source.items[i].name).stem}.wav", out,
                       model.sample_rate)
        for k, v in speech_quality(wav, out, model.sample_rate).items():
            scores.setdefault(k, []).append(v)
    metrics = {k: float(np.nanmean(v)) if not np.isnan(v).all() else math.nan
               for k, v in scores.items()}
    metrics["decode_real_time_factor"] = decode_seconds / audio_seconds
    metrics["items"] = n
    return metrics
