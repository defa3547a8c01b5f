"""Stage-1 training of the image tokenizer (VQGAN, Esser et al. 2021), under accelerate.

Two optimisers: the autoencoder (encoder, quantizer, decoder) minimises

    L = w_l1·L1 + w_l2·L2 + w_p·LPIPS  +  w_q·L_VQ  +  [step ≥ disc_start] · w_gan·λ·L_G

with λ the adaptive weight of VQGAN eq. 7 (speechtok.image.losses.adaptive_gan_weight) and L_G the
hinge generator loss; the PatchGAN discriminator minimises the hinge loss from `disc_start` on.
Batches are a function of the step, and the checkpoint holds both models, both optimisers, the
schedule and the RNG, so `resume=True` after a kill continues exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from speechtok.image import ImageTokenizer, ImageTokenizerConfig
from speechtok.image.data import open_image_splits
from speechtok.image.discriminators import PatchDiscriminator
from speechtok.image.evaluate import evaluate_image, save_reconstruction_grid
from speechtok.image.losses import adaptive_gan_weight, hinge_d_loss, hinge_g_loss, l1_loss, l2_loss
from speechtok.training.accelerator import make_accelerator
from speechtok.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from speechtok.training.config import dump_config
from speechtok.training.loss_curve import LossCurve
from speechtok.training.schedule import lr_lambda


@dataclass
class ImageTrainConfig:
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    # Adam betas of both optimisers; (0.5, 0.9) as taming-transformers (GAN training prefers
    # little momentum).
    adam_betas: tuple[float, ...] = (0.5, 0.9)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    # GAN (switched on at disc_start; weights in ImageTokenizerConfig.loss_weights["gan"]).
    disc_start: int = 2000
    disc_lr: float = 2e-4
    disc_channels: int = 64
    disc_layers: int = 2  # 2 suits 32-64 px images; taming uses 3 at 256 px
    perceptual_weights: str | None = None  # local VGG16 .safetensors (speechtok.image.perceptual)
    eval_every: int = 500
    log_every: int = 25  # training terms averaged every N steps → train_curve.json
    save_every: int = 500
    eval_max_items: int = 512
    grid_images: int = 16
    valid_fraction: float = 0.05
    seed: int = 0
    mixed_precision: str = "auto"  # "auto" = bf16 on CUDA, fp32 on CPU; or "no" / "bf16"
    cache_images: bool = True
    max_minutes: float = 0.0  # stop early after this wall time (0 = no limit)
    stop_after_steps: int = 0  # checkpoint and stop here (0 = run to `steps`); resume continues

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if len(self.adam_betas) != 2:
            raise ValueError(f"adam_betas needs two values, got {self.adam_betas}")
        if self.disc_start < 0:
            raise ValueError(f"disc_start must be ≥ 0, got {self.disc_start}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be auto/no/bf16/fp16, got "
                             f"{self.mixed_precision!r}")


def generator_losses(model: ImageTokenizer, x: torch.Tensor, step: int, cfg: ImageTrainConfig,
                     disc: PatchDiscriminator | None, perceptual=None
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Loss terms of the autoencoder on `x` (B, 3, H, W) in [-1, 1]; returns (terms, x̂)."""
    out = model(x)
    x_hat = out.reconstruction
    w = model.config.loss_weights
    terms = {"l1": l1_loss(x_hat, x), "l2": l2_loss(x_hat, x)}
    if perceptual is not None and w.get("perceptual", 0) > 0:
        terms["perceptual"] = perceptual(x_hat, x)
    rec = sum(w.get(k, 0.0) * v for k, v in terms.items())
    terms["quantizer"] = out.quantizer.loss
    loss = rec + w.get("quantizer", 1.0) * out.quantizer.loss
    if disc is not None and step >= cfg.disc_start and w.get("gan", 0) > 0:
        g_loss = hinge_g_loss(disc(x_hat))
        lam = adaptive_gan_weight(rec, g_loss, model.decoder.last_layer)
        terms.update(gan_g=g_loss, gan_lambda=lam)
        loss = loss + w["gan"] * lam * g_loss
    terms["loss"] = loss
    for k, v in out.quantizer.metrics.items():
        terms[k] = v
    return terms, x_hat


def train_image(data: str | Path, out: str | Path, model_cfg: ImageTokenizerConfig,
                cfg: ImageTrainConfig, resume: bool = False) -> ImageTokenizer:
    """Train an ImageTokenizer on `data`; save it hub-shaped into `out`; return it."""
    from accelerate.utils import set_seed

    out = Path(out)
    acc, mp = make_accelerator(cfg.mixed_precision)
    # The blank backgrounds of glyphs and digits drive activations into denormal floats, which
    # slow CPU convolutions (as silence does in speech.train); flushing them changes nothing.
    torch.set_flush_denormal(True)
    set_seed(cfg.seed)
    train_src, valid_src = open_image_splits(data, model_cfg.resolution, cfg.valid_fraction,
                                             seed=cfg.seed, cache=cfg.cache_images)
    model = ImageTokenizer(model_cfg)
    use_gan = model_cfg.loss_weights.get("gan", 0) > 0 and cfg.disc_start < cfg.steps
    disc = PatchDiscriminator(model_cfg.in_channels, cfg.disc_channels, cfg.disc_layers) \
        if use_gan else None
    perceptual = None
    if cfg.perceptual_weights and model_cfg.loss_weights.get("perceptual", 0) > 0:
        from speechtok.image.perceptual import PerceptualLoss

        perceptual = PerceptualLoss.from_file(cfg.perceptual_weights).to(acc.device)
    betas = tuple(cfg.adam_betas)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=betas)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.disc_lr, betas=betas) \
        if disc is not None else None
    extra = {"discriminator": (disc, opt_d)} if disc is not None else {}
    ckpt_dir = out / "checkpoints" / "last"
    start_step, history, curve = 0, [], LossCurve(cfg.log_every)
    found = find_checkpoint(ckpt_dir) if resume else None
    if found is not None:
        state = load_checkpoint(found, model, opt, sched, extra)
        start_step, history = state["step"], state.get("history", [])
        curve = LossCurve(cfg.log_every, state.get("curve"))
        acc.print(f"resuming from {found} at step {start_step}")
    elif resume:
        acc.print(f"--resume: no checkpoint in {ckpt_dir}, starting fresh")
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(out / "train_config.yaml", model_cfg, cfg)
    if disc is not None:
        model, opt, disc, opt_d = acc.prepare(model, opt, disc, opt_d)
    else:
        model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)
    raw_disc = acc.unwrap_model(disc) if disc is not None else None
    n_params = sum(p.numel() for p in raw.parameters())
    acc.print(f"image tokenizer: {n_params / 1e6:.2f}M parameters, {len(train_src)} train / "
              f"{len(valid_src)} valid images at {model_cfg.resolution}px, f="
              f"{model_cfg.downsample_factor} ({model_cfg.grid_size}×{model_cfg.grid_size} grid), "
              f"K={model_cfg.codebook_size}, GAN from step "
              f"{cfg.disc_start if disc is not None else 'never'}, device {acc.device}, "
              f"precision {mp}")
    if cfg.cache_images:
        train_src.preload(progress=acc.is_local_main_process)
    t0 = time.time()
    bar = tqdm(range(start_step, cfg.steps), initial=start_step, total=cfg.steps,
               disable=not acc.is_local_main_process, desc="train image", dynamic_ncols=True)
    model.train()
    for step in bar:
        x = train_src.batch(step, cfg.batch_size, cfg.seed, acc.process_index)
        x = (x * 2 - 1).to(acc.device)
        gen = raw if acc.num_processes == 1 else model
        with acc.autocast():
            terms, x_hat = generator_losses(gen, x, step, cfg, disc, perceptual)
        opt.zero_grad(set_to_none=True)
        acc.backward(terms["loss"])
        if cfg.max_grad_norm > 0:
            acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        if disc is not None and step >= cfg.disc_start:
            with acc.autocast():
                d_loss = hinge_d_loss(disc(x), disc(x_hat.detach()))
            opt_d.zero_grad(set_to_none=True)
            acc.backward(d_loss)
            opt_d.step()
            terms["gan_d"] = d_loss
        logs = {f"train/{k}": round(float(v.detach()), 4) for k, v in terms.items()}
        bar.set_postfix(l1=logs["train/l1"], usage=logs.get("train/usage"))
        done = step + 1
        curve.add(done, logs)
        last = (done == cfg.steps or done == cfg.stop_after_steps
                or (cfg.max_minutes and time.time() - t0 > 60 * cfg.max_minutes))
        if done % cfg.eval_every == 0 or last:
            metrics = evaluate_image(raw, valid_src, cfg.eval_max_items)
            history.append({"step": done, **logs, **{f"eval/{k}": v for k, v in metrics.items()}})
            acc.print(f"step {done}: " + json.dumps({k: round(v, 4) for k, v in metrics.items()}))
            if acc.is_main_process:
                save_reconstruction_grid(raw, valid_src, out / "reconstructions.png",
                                         cfg.grid_images)
        if acc.is_main_process and (done % cfg.save_every == 0 or last):
            save_checkpoint(ckpt_dir, raw, opt, sched, {"step": done, "history": history,
                                                        "curve": curve.points},
                            {"discriminator": (raw_disc, opt_d)} if disc is not None else None)
        if last:
            break
    acc.wait_for_everyone()
    if acc.is_main_process:
        raw.save_pretrained(out)
        (out / "train_history.json").write_text(json.dumps(history, indent=1))
        curve.save(out)
    return raw
