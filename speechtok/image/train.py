"""Stage-1 training of the image tokenizer (VQGAN, Esser et al. 2021), under accelerate.

Two optimisers: the autoencoder (encoder, quantizer, decoder) minimises

    L = w_l1·L1 + w_l2·L2 + w_p·LPIPS  +  w_q·L_VQ  +  [step ≥ disc_start] · w_gan·λ·L_G

with λ the adaptive weight of VQGAN eq. 7 (speechtok.image.losses.adaptive_gan_weight) and L_G the
hinge generator loss; the PatchGAN discriminator minimises the hinge loss from `disc_start` on.
The step is defined here; the checkpoint (both models, both optimisers, the schedule, the RNG),
its schedule and exact resume are the shared loop's (speechtok.training.loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from speechtok.fields import option, override
from speechtok.image import ImageTokenizer, ImageTokenizerConfig
from speechtok.image.data import open_image_splits, open_image_stream_splits
from speechtok.image.discriminators import PatchDiscriminator
from speechtok.image.evaluate import evaluate_image, save_reconstruction_grid
from speechtok.image.losses import adaptive_gan_weight, hinge_d_loss, hinge_g_loss, l1_loss, l2_loss
from speechtok.memory_cache import per_process_mb
from speechtok.streaming import is_stream
from speechtok.training.accelerator import maybe_compile, start_run
from speechtok.training.batches import auto_workers, next_batch, step_batches
from speechtok.training.config import dump_config
from speechtok.training.loop import TrainLoop, apply_gradients, scalars
from speechtok.training.options import TrainLoopConfig
from speechtok.training.schedule import lr_lambda


@dataclass
class ImageTrainConfig(TrainLoopConfig):
    """How the image tokenizer is trained (the shared loop fields, then the VQGAN ones)."""

    steps: int = override(TrainLoopConfig, "steps", 3000)
    save_every: int = override(TrainLoopConfig, "save_every", 500)
    batch_size: int = option(64, "images per step")
    adam_betas: tuple[float, ...] = option((0.5, 0.9), "Adam betas of both optimisers "
                                           "(taming-transformers: GANs prefer little momentum)")
    disc_start: int = option(2000, "switch the GAN loss and the discriminator on at this step")
    disc_lr: float = option(2e-4, "learning rate of the discriminator")
    disc_channels: int = option(64, "channels of the PatchGAN discriminator")
    disc_layers: int = option(2, "strided layers of the discriminator (2 suits 32-64 px; taming "
                              "uses 3 at 256 px)")
    perceptual_weights: str | None = option(None, "a local VGG16 .safetensors for the "
                                            "perceptual loss (speechtok.image.perceptual)")
    random_crop_scale: tuple[float, float] = option(
        (1.0, 1.0), "training images are random square crops of a side in [low, high] × the "
        "shorter side, resized to the resolution ((1, 1): the centre crop, as evaluated)")
    random_flip: bool = option(False, "mirror half of the training images left-right")
    eval_max_items: int = option(512, "held-out images per evaluation")
    grid_images: int = option(16, "images per row of the reconstruction grid")
    valid_fraction: float = option(0.05, "share of the images held out when the data has no "
                                   "valid/ split")
    streaming: bool = option(False, "read --data (a saved `datasets` folder) as a stream; "
                             "--data hub:NAME[:CONFIG] always streams (speechtok.streaming). The "
                             "first eval_max_items rows are held out")
    shuffle_buffer: int = option(1000, "rows in the shuffle buffer of a streamed dataset")
    cache_mb: float = option(200.0, "MB of decoded images (uint8) kept in memory, in all (each "
                             "of the loader's worker processes keeps its share); 0 = decode "
                             "every time")

    def __post_init__(self):
        super().__post_init__()
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {self.batch_size}")
        if len(self.adam_betas) != 2:
            raise ValueError(f"adam_betas needs two values, got {self.adam_betas}")
        if self.disc_start < 0:
            raise ValueError(f"disc_start must be ≥ 0, got {self.disc_start}")


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
    out = Path(out)
    acc, mp = start_run(cfg.mixed_precision, cfg.seed)
    workers = auto_workers(cfg.num_workers)
    if is_stream(data, cfg.streaming):
        train_src, valid_src = open_image_stream_splits(data, model_cfg.resolution, cfg.seed,
                                                        acc.process_index, acc.num_processes,
                                                        cfg.eval_max_items, cfg.shuffle_buffer)
    else:
        train_src, valid_src = open_image_splits(data, model_cfg.resolution,
                                                 cfg.valid_fraction, seed=cfg.seed,
                                                 cache_mb=per_process_mb(cfg.cache_mb, workers),
                                                 crop_scale=tuple(cfg.random_crop_scale),
                                                 flip=cfg.random_flip)
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
    extra = {"discriminator": (disc, opt_d)} if disc is not None else None
    loop = TrainLoop(acc, cfg, out, "image", model, opt, sched, extra)
    if resume:
        loop.resume(model_cfg, cfg)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(out / "train_config.yaml", model_cfg, cfg)
    if disc is not None:
        model, opt, disc, opt_d = acc.prepare(model, opt, disc, opt_d)
    else:
        model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)
    n_params = sum(p.numel() for p in raw.parameters())
    acc.print(f"image tokenizer: {n_params / 1e6:.2f}M parameters, {train_src.describe()} train / "
              f"{len(valid_src)} valid images at {model_cfg.resolution}px, f="
              f"{model_cfg.downsample_factor} ({model_cfg.grid_size}×{model_cfg.grid_size} grid), "
              f"K={model_cfg.codebook_size}, GAN from step "
              f"{cfg.disc_start if disc is not None else 'never'}, device {acc.device}, "
              f"precision {mp}")
    batches = step_batches(partial(train_src.batch, batch_size=cfg.batch_size, seed=cfg.seed,
                                   process_index=acc.process_index),
                           loop.start_step, cfg.steps, workers, cfg.seed)

    gen = maybe_compile(raw if acc.num_processes == 1 else model, cfg.compile)

    def train_step(step: int) -> dict[str, float]:
        x = next_batch(batches, step)
        x = (x * 2 - 1).to(acc.device)
        with acc.autocast():
            terms, x_hat = generator_losses(gen, x, step, cfg, disc, perceptual)
        opt.zero_grad(set_to_none=True)
        acc.backward(terms["loss"])
        apply_gradients(acc, model, opt, sched, cfg.max_grad_norm)
        if disc is not None and step >= cfg.disc_start:
            with acc.autocast():
                d_loss = hinge_d_loss(disc(x), disc(x_hat.detach()))
            opt_d.zero_grad(set_to_none=True)
            acc.backward(d_loss)
            opt_d.step()
            terms["gan_d"] = d_loss
        return scalars(terms)

    def evaluate(done: int) -> dict[str, float]:
        metrics = evaluate_image(raw, valid_src, cfg.eval_max_items)
        if acc.is_main_process:
            save_reconstruction_grid(raw, valid_src, out / "reconstructions.png", cfg.grid_images)
        return metrics

    model.train()
    loop.run(train_step, evaluate, shown=("train/l1", "train/usage"), loader=batches)
    loop.finish(raw.save_pretrained)
    return raw
