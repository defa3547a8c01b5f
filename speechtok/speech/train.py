"""Stage-1 training of the speech tokenizer (reconstruction), under accelerate.

CPU here; CUDA with bf16 autocast where present; several GPUs with `accelerate launch` (the
quantizer all-reduces its EMA statistics so every process keeps the same codebook). Batches are
a function of the step number, and the checkpoint holds the model, optimizer, scheduler and RNG
state, so `resume=True` after a kill continues exactly where the run would have gone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from speechtok.speech import SpeechTokenizer, SpeechTokenizerConfig
from speechtok.speech.data import AudioSource, open_splits
from speechtok.speech.evaluate import evaluate_speech
from speechtok.speech.losses import log_mel_l1
from speechtok.training.accelerator import make_accelerator
from speechtok.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from speechtok.training.config import dump_config
from speechtok.training.loss_curve import LossCurve
from speechtok.training.schedule import lr_lambda


@dataclass
class SpeechTrainConfig:
    steps: int = 2000
    batch_size: int = 16
    segment_seconds: float = 1.28
    lr: float = 2e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    gain_augment_db: float = 6.0  # random input gain, so units don't encode loudness
    vtlp_range: float = 0.12  # encoder input spectra warped by a factor in 1 ± this (VTLP)
    eval_every: int = 500
    log_every: int = 25  # training terms averaged every N steps → train_curve.json
    save_every: int = 250
    eval_max_items: int = 64
    valid_fraction: float = 0.05
    seed: int = 0
    mixed_precision: str = "auto"  # "auto" = bf16 on CUDA, fp32 on CPU; or "no" / "bf16"
    cache_audio: bool = True
    max_minutes: float = 0.0  # stop early after this wall time (0 = no limit)
    stop_after_steps: int = 0  # checkpoint and stop at this step (0 = run to `steps`), to split
    # a run across job time limits; `--resume` continues it as if uninterrupted

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be auto/no/bf16/fp16, got "
                             f"{self.mixed_precision!r}")


def feature_stats(model: SpeechTokenizer, source: AudioSource, n: int = 200):
    """Per-mel-bin mean and std of the encoder's features over up to `n` training clips."""
    feats = []
    step = max(1, len(source) // n)
    for i in range(0, len(source), step):
        feats.append(model.encoder.front.features(source.load(i)[None])[0])
    f = torch.cat(feats, dim=-1)
    return f.mean(-1, keepdim=True), f.std(-1, keepdim=True).clamp_min(1e-3)


def compute_losses(model: SpeechTokenizer, wav: torch.Tensor,
                   input_wav: torch.Tensor | None = None, warp: torch.Tensor | None = None
                   ) -> dict[str, torch.Tensor]:
    out = model(wav, input_wav, warp)
    terms = {"mel": log_mel_l1(out.log_mel, out.target_log_mel), "quantizer": out.quantizer.loss}
    w = model.config.loss_weights
    terms["loss"] = sum(w.get(k, 0.0) * v for k, v in terms.items())
    for k, v in out.quantizer.metrics.items():
        terms[k] = v
    return terms


def train_speech(data: str | Path, out: str | Path, model_cfg: SpeechTokenizerConfig,
                 cfg: SpeechTrainConfig, resume: bool = False) -> SpeechTokenizer:
    """Train a SpeechTokenizer on `data`; save it hub-shaped into `out`; return it."""
    from accelerate.utils import set_seed

    out = Path(out)
    acc, mp = make_accelerator(cfg.mixed_precision)
    # Silence in real recordings drives activations into denormal floats, which made CPU
    # convolutions up to 10x slower here; flushing them to zero changes nothing measurable.
    torch.set_flush_denormal(True)
    set_seed(cfg.seed)
    train_src, valid_src = open_splits(data, model_cfg.sample_rate, cfg.valid_fraction,
                                       seed=cfg.seed, cache=cfg.cache_audio)
    model = SpeechTokenizer(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.8, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    ckpt_dir = out / "checkpoints" / "last"
    start_step, history, curve = 0, [], LossCurve(cfg.log_every)
    found = find_checkpoint(ckpt_dir) if resume else None
    if found is not None:
        state = load_checkpoint(found, model, opt, sched)
        start_step, history = state["step"], state.get("history", [])
        curve = LossCurve(cfg.log_every, state.get("curve"))
        acc.print(f"resuming from {found} at step {start_step}")
    else:
        if resume:
            acc.print(f"--resume: no checkpoint in {ckpt_dir}, starting fresh")
        mean, std = feature_stats(model, train_src)
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
    acc.print(f"speech tokenizer: {n_params / 1e6:.2f}M parameters, {len(train_src)} train / "
              f"{len(valid_src)} valid clips, {model_cfg.frame_rate:g} Hz units, "
              f"K={model_cfg.codebook_size}, device {acc.device}, precision {mp}")
    t0 = time.time()
    bar = tqdm(range(start_step, cfg.steps), initial=start_step, total=cfg.steps,
               disable=not acc.is_local_main_process, desc="train speech", dynamic_ncols=True)
    model.train()
    step = start_step
    for step in bar:
        wav = train_src.batch(step, cfg.batch_size, segment, cfg.seed, acc.process_index)
        g = torch.Generator().manual_seed(cfg.seed * 7919 + step)
        gain_db = (torch.rand(wav.shape[0], 1, generator=g) * 2 - 1) * cfg.gain_augment_db
        warp = 1 + (torch.rand(wav.shape[0], generator=g) * 2 - 1) * cfg.vtlp_range
        wav = wav.to(acc.device)
        with acc.autocast():
            terms = compute_losses(raw if acc.num_processes == 1 else model, wav,
                                   wav * (10 ** (gain_db.to(acc.device) / 20)),
                                   warp.to(acc.device) if cfg.vtlp_range > 0 else None)
        opt.zero_grad(set_to_none=True)
        acc.backward(terms["loss"])
        if cfg.max_grad_norm > 0:
            acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        logs = {f"train/{k}": round(float(v.detach()), 4) for k, v in terms.items()}
        bar.set_postfix(loss=logs["train/loss"], usage=logs.get("train/usage"))
        done = step + 1
        curve.add(done, logs)
        last = (done == cfg.steps or done == cfg.stop_after_steps
                or (cfg.max_minutes and time.time() - t0 > 60 * cfg.max_minutes))
        if done % cfg.eval_every == 0 or last:
            metrics = evaluate_speech(raw, valid_src, cfg.eval_max_items)
            history.append({"step": done, **logs, **{f"eval/{k}": v for k, v in metrics.items()}})
            acc.print(f"step {done}: " + json.dumps({k: round(v, 4) for k, v in metrics.items()}))
        if acc.is_main_process and (done % cfg.save_every == 0 or last):
            save_checkpoint(ckpt_dir, raw, opt, sched, {"step": done, "history": history,
                                                        "curve": curve.points})
        if last:
            break
    acc.wait_for_everyone()
    if acc.is_main_process:
        raw.save_pretrained(out)
        (out / "train_history.json").write_text(json.dumps(history, indent=1))
        curve.save(out)
    return raw
