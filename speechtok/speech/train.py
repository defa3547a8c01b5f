"""Stage-1 training of the speech tokenizer (reconstruction), under accelerate.

CPU here; CUDA with bf16 autocast where present; several GPUs with `accelerate launch` (the
quantizer all-reduces its EMA statistics so every process keeps the same codebook). The step
is defined here; scheduling, checkpoints and exact resume are the shared loop's
(speechtok.training.loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from speechtok.fields import option, override
from speechtok.memory_cache import per_process_mb
from speechtok.speech import SpeechTokenizer, SpeechTokenizerConfig
from speechtok.speech.augment import ChannelAugment, change_speed
from speechtok.speech.content_training import (
    ContentObjectives,
    SpeechBatches,
    retime_labels,
)
from speechtok.speech.data import (
    AudioSource,
    StreamingAudioSource,
    open_splits,
    open_stream_splits,
)
from speechtok.speech.evaluate import evaluate_speech
from speechtok.speech.losses import log_mel_l1
from speechtok.streaming import is_stream
from speechtok.training.accelerator import maybe_compile, start_run
from speechtok.training.batches import auto_workers, next_batch, step_batches
from speechtok.training.config import dump_config
from speechtok.training.loop import TrainLoop, apply_gradients, scalars
from speechtok.training.options import TrainLoopConfig
from speechtok.training.schedule import lr_lambda


@dataclass
class SpeechClipsConfig(TrainLoopConfig):
    """The fields of every trainer that learns from random crops of speech clips (the speech
    tokenizer, its learned decoder): the shared loop fields, then these."""

    batch_size: int = option(16, "clips per step")
    segment_seconds: float = option(1.28, "length of the random crop of each clip, seconds")
    eval_max_items: int = option(64, "held-out clips per evaluation")
    valid_fraction: float = option(0.05, "share of the clips held out when the data has no "
                                   "valid/ split")
    cache_mb: float = option(200.0, "MB of decoded clips kept in memory, in all (each of the "
                             "loader's worker processes keeps its share); 0 = decode every time")

    def __post_init__(self):
        super().__post_init__()
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {self.batch_size}")


@dataclass
class SpeechTrainConfig(SpeechClipsConfig):
    """How the speech tokenizer is trained (the shared clip fields, then the speech ones)."""

    steps: int = override(TrainLoopConfig, "steps", 2000)
    lr: float = override(TrainLoopConfig, "lr", 2e-3)
    gain_augment_db: float = option(6.0, "random input gain of up to ± this many dB, so units "
                                    "do not encode loudness")
    vtlp_range: float = option(0.12, "the encoder's input spectra are warped by a random factor "
                               "in 1 ± this (VTLP), so units do not encode the vocal tract")
    init_from: str | None = option(None, "fine-tune: start from this saved speech tokenizer's "
                                   "weights and feature statistics (its architecture must "
                                   "match the model config; recipes read it from its "
                                   "config.json)")
    noise_prob: float = option(0.0, "share of clips whose encoder input gets coloured noise "
                               "(white to brown) at a random SNR in noise_snr_db")
    noise_snr_db: tuple[float, float] = option((5.0, 30.0), "range of the added noise's SNR, dB")
    reverb_prob: float = option(0.0, "share of clips whose encoder input is reverberated by a "
                                "synthetic room impulse response, RT60 in reverb_rt60")
    reverb_rt60: tuple[float, float] = option((0.2, 0.8), "range of the synthetic rooms' "
                                              "reverberation time, seconds")
    telephone_prob: float = option(0.0, "share of clips whose encoder input goes through the "
                                   "telephone channel (8 kHz band, G.711 μ-law)")
    speed_range: float = option(0.0, "each step's clips play at a random speed in 1 ± this "
                                "(pitch and tempo; input and target alike)")
    streaming: bool = option(False, "read --data (a saved `datasets` folder) as a stream; "
                             "--data hub:NAME[:CONFIG] always streams (speechtok.streaming). The "
                             "first eval_max_items rows are held out")
    shuffle_buffer: int = option(1000, "rows in the shuffle buffer of a streamed dataset")
    # Content objectives (speechtok.speech.content): training-time heads, not saved with the
    # tokenizer.
    phone_weight: float = option(0.0, "weight of frame-level phone classification of the "
                                 "quantized latents, on the items whose metadata.jsonl has "
                                 "'phones' alignments (PAST; off, with a note, when none has); "
                                 "0 = off")
    ctc_weight: float = option(0.0, "weight of CTC to the characters of 'text' by a BiLSTM head "
                               "on the quantized latents (PAST), on whole-utterance steps (off, "
                               "with a note, when no item has a text); 0 = off")
    ctc_every: int = option(4, "one step in this many trains on whole utterances with text "
                            "(the CTC steps) instead of random crops")
    ctc_batch_size: int = option(6, "utterances per CTC step")
    ctc_max_seconds: float = option(5.0, "longer utterances are cropped on CTC steps and get "
                                    "no CTC target")
    consistency_weight: float = option(0.0, "weight of the term that commits the degraded "
                                       "copy's latents to the clean copy's units (Gat et al. "
                                       "2022); needs a codebook quantizer (vq, rvq); 0 = off")

    def __post_init__(self):
        super().__post_init__()
        for name in ("phone_weight", "ctc_weight", "consistency_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.ctc_every < 1 or self.ctc_batch_size < 1 or not self.ctc_max_seconds > 0:
            raise ValueError(f"ctc_every and ctc_batch_size must be ≥ 1 and ctc_max_seconds > 0, "
                             f"got {self.ctc_every}, {self.ctc_batch_size}, "
                             f"{self.ctc_max_seconds}")
        for name in ("noise_prob", "reverb_prob", "telephone_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("noise_snr_db", "reverb_rt60"):
            setattr(self, name, tuple(float(x) for x in getattr(self, name)))
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} must be (low, high), got {getattr(self, name)}")
        if not 0 <= self.speed_range < 0.5:
            raise ValueError(f"speed_range must be in [0, 0.5), got {self.speed_range}")

    def channel_augment(self, sample_rate: int) -> ChannelAugment:
        return ChannelAugment(sample_rate, self.noise_prob, self.noise_snr_db, self.reverb_prob,
                              self.reverb_rt60, self.telephone_prob)


def feature_stats(model: SpeechTokenizer, source: AudioSource, n: int = 200):
    """Per-mel-bin mean and std of the encoder's features over up to `n` training clips."""
    feats = []
    step = max(1, len(source) // n)
    for i in range(0, len(source), step):
        feats.append(model.encoder.front.features(source.load(i)[None])[0])
    f = torch.cat(feats, dim=-1)
    return f.mean(-1, keepdim=True), f.std(-1, keepdim=True).clamp_min(1e-3)


def stats_source(train_src, sample_rate: int) -> AudioSource:
    """The clips the feature statistics are taken from: the training source itself, or the
    first 200 rows of a stream (read only on a fresh start; the loader workers open their
    own iterators, so this process's is closed after)."""
    if not isinstance(train_src, StreamingAudioSource):
        return train_src
    head = AudioSource(train_src.stream.rows(0, 200), sample_rate)
    train_src.stream.close()
    return head


def start_from(model: SpeechTokenizer, path: str | Path) -> None:
    """Copy the weights (and the feature statistics, which are buffers) of the saved tokenizer
    at `path` into `model`; a different architecture is an error naming the difference."""
    from safetensors.torch import load_file

    weights = Path(path) / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"init_from: {path} is not a saved tokenizer (no "
                                "model.safetensors)")
    state = load_file(str(weights))
    own = model.state_dict()
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    missing = sorted(set(own) ^ set(state))
    if wrong or missing:
        raise ValueError(f"init_from {path}: its architecture differs from the model config "
                         f"(shapes differ: {wrong[:3]}; names differ: {missing[:3]}); use its "
                         "config.json as the model config")
    model.load_state_dict(state)


def compute_losses(model: SpeechTokenizer, wav: torch.Tensor,
                   input_wav: torch.Tensor | None = None, warp: torch.Tensor | None = None,
                   weights: dict[str, float] | None = None, content: ContentObjectives | None
                   = None, labels: dict | None = None) -> dict[str, torch.Tensor]:
    """The weighted training loss ("loss") and every term and metric of one batch.
    `weights` default to the model config's loss_weights; `content` adds the content
    objectives' terms (their weights with them) on `labels` from the batch."""
    out = model(wav, input_wav, warp, clean_codes=content is not None and content.consistency)
    terms = {"mel": log_mel_l1(out.log_mel, out.target_log_mel), "quantizer": out.quantizer.loss}
    w = dict(model.config.loss_weights if weights is None else weights)
    if content is not None:
        terms.update(content.losses(out, labels or {}))
        w.update(content.weights)
    terms["loss"] = sum(w.get(k, 0.0) * v for k, v in terms.items())
    terms.pop("unused", None)  # a zero in the loss (see ContentHeads), not a term to log
    for k, v in out.quantizer.metrics.items():
        terms[k] = v
    if content is not None:
        terms.update(content.metrics(out, labels or {}))
    return terms


def train_speech(data: str | Path, out: str | Path, model_cfg: SpeechTokenizerConfig,
                 cfg: SpeechTrainConfig, resume: bool = False) -> SpeechTokenizer:
    """Train a SpeechTokenizer on `data`; save it hub-shaped into `out`; return it."""
    out = Path(out)
    acc, mp = start_run(cfg.mixed_precision, cfg.seed)
    workers = auto_workers(cfg.num_workers)
    if is_stream(data, cfg.streaming):
        train_src, valid_src = open_stream_splits(data, model_cfg.sample_rate, cfg.seed,
                                                  acc.process_index, acc.num_processes,
                                                  cfg.eval_max_items, cfg.shuffle_buffer)
    else:
        train_src, valid_src = open_splits(data, model_cfg.sample_rate, cfg.valid_fraction,
                                           seed=cfg.seed,
                                           cache_mb=per_process_mb(cfg.cache_mb, workers))
    model = SpeechTokenizer(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.8, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    # The content heads train beside the tokenizer with their own optimiser (a constant rate)
    # and are checkpointed with it, but never saved into the tokenizer's folder.
    content, heads_opt, extra = None, None, None
    if cfg.phone_weight or cfg.ctc_weight or cfg.consistency_weight:
        content = ContentObjectives.for_training(cfg, model_cfg, model.quantizer, train_src)
        if content is not None and content.heads is not None:
            heads_opt = torch.optim.AdamW(content.heads.parameters(), lr=cfg.lr,
                                          betas=(0.8, 0.99))
            extra = {"content_heads": (content.heads, heads_opt)}
    loop = TrainLoop(acc, cfg, out, "speech", model, opt, sched, extra)
    if not (resume and loop.resume(model_cfg, cfg)):
        if cfg.init_from:
            start_from(model, cfg.init_from)
        else:
            mean, std = feature_stats(model, stats_source(train_src, model_cfg.sample_rate))
            model.encoder.front.feat_mean.copy_(mean)
            model.encoder.front.feat_std.copy_(std)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(out / "train_config.yaml", model_cfg, cfg)
    model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)
    segment = int(cfg.segment_seconds * model_cfg.sample_rate)
    segment -= segment % model_cfg.total_stride
    n_params = sum(p.numel() for p in raw.parameters())
    acc.print(f"speech tokenizer: {n_params / 1e6:.2f}M parameters, {train_src.describe()} train / "
              f"{len(valid_src)} valid clips, {model_cfg.frame_rate:g} Hz units, "
              f"K={model_cfg.codebook_size}, device {acc.device}, precision {mp}")

    if content is not None:
        if heads_opt is not None:
            content.heads, heads_opt = acc.prepare(content.heads, heads_opt)
        acc.print(content.describe())

    batches = step_batches(
        partial(SpeechBatches(train_src, content.labels if content else None, cfg, segment,
                              model_cfg.total_stride), process_index=acc.process_index),
        loop.start_step, cfg.steps, workers, cfg.seed)

    forward = maybe_compile(raw if acc.num_processes == 1 else model, cfg.compile)
    channel = cfg.channel_augment(model_cfg.sample_rate)
    weights = dict(model_cfg.loss_weights)

    def train_step(step: int) -> dict[str, float]:
        batch = next_batch(batches, step)
        wav, labels = batch["wav"], {k: v for k, v in batch.items() if k != "wav"}
        g = torch.Generator().manual_seed(cfg.seed * 7919 + step)
        gain_db = (torch.rand(wav.shape[0], 1, generator=g) * 2 - 1) * cfg.gain_augment_db
        warp = 1 + (torch.rand(wav.shape[0], generator=g) * 2 - 1) * cfg.vtlp_range
        if cfg.speed_range > 0:  # one speed per step: the batch keeps one length
            factor = 1 + (float(torch.rand(1, generator=g)) * 2 - 1) * cfg.speed_range
            wav = change_speed(wav, factor, model_cfg.sample_rate)
            wav = wav[:, :wav.shape[-1] - wav.shape[-1] % model_cfg.total_stride]
            labels = retime_labels(labels, factor, wav.shape[-1] // model_cfg.total_stride)
        noisy = wav * (10 ** (gain_db / 20))
        if channel.active:  # on the CPU, before the move: the filters are small FFTs
            noisy = channel(noisy, g)
        wav = wav.to(acc.device)
        labels = {k: v.to(acc.device) for k, v in labels.items()}
        with acc.autocast():
            terms = compute_losses(forward, wav, noisy.to(acc.device),
                                   warp.to(acc.device) if cfg.vtlp_range > 0 else None,
                                   weights, content, labels)
        opt.zero_grad(set_to_none=True)
        if heads_opt is not None:
            heads_opt.zero_grad(set_to_none=True)
        acc.backward(terms["loss"])
        if heads_opt is not None:
            if cfg.max_grad_norm > 0:
                acc.clip_grad_norm_(content.heads.parameters(), cfg.max_grad_norm)
            heads_opt.step()
        apply_gradients(acc, model, opt, sched, cfg.max_grad_norm)
        return scalars(terms)

    model.train()
    loop.run(train_step, lambda done: evaluate_speech(raw, valid_src, cfg.eval_max_items),
             shown=("train/loss", "train/usage"), loader=batches)
    loop.finish(raw.save_pretrained)
    return raw
