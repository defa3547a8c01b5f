"""ImageTokenizer: images ↔ grids of discrete codes, a VQGAN (Esser et al. 2021).

    image (B, 3, H, W) in [0, 1] ─► [-1, 1] ─► conv encoder ─► (B, D, H/f, W/f)
        ─► VectorQuantizer (low-dim l2-normalised codes, ViT-VQGAN / LlamaGen) ─► grid (B, h, w)
    grid ─► codebook vectors ─► conv decoder ─► image (B, 3, H, W) in [0, 1]

Training adds L1/L2 reconstruction, an optional perceptual loss, and a PatchGAN with hinge loss
and the adaptive weight (speechtok.train_image); the tokenizer itself is just the autoencoder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from .hub import QuietLocalLoading
from .image_io import prepare_images
from .image_modules import ImageDecoder, ImageEncoder
from .quantizer import QuantizerOutput, build_quantizer

_DEFAULT_MULT = (1, 2, 2, 4, 4)


@dataclass
class ImageTokenizerConfig:
    """Everything needed to rebuild an ImageTokenizer; saved as config.json."""

    kind: str = "image"
    resolution: int = 32  # inputs are resized / centre-cropped to this square (image_io)
    in_channels: int = 3
    downsample_factor: int = 4  # f: a 32×32 image becomes an 8×8 grid at f = 4
    channels: int = 64
    channel_mult: tuple[int, ...] | None = None  # per level; default (1, 2, 2, 4, 4)[:log2 f + 1]
    num_res_blocks: int = 1
    norm_groups: int = 32
    dropout: float = 0.0
    latent_dim: int = 64
    # Quantizer (the same block as SpeechTokenizerConfig; speechtok.quantizer.build_quantizer).
    quantizer: str = "vq"
    codebook_size: int = 256
    codebook_dim: int | None = 8
    l2_normalize: bool = True
    ema_decay: float | None = 0.95
    commitment_weight: float = 0.25
    kmeans_init: bool = True
    dead_code_steps: int = 50
    rvq_depth: int = 4
    fsq_levels: tuple[int, ...] = (8, 5, 5, 5)
    # Loss weights (speechtok.train_image): "l1", "l2", "perceptual", "quantizer", "gan".
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"l1": 1.0, "l2": 1.0, "perceptual": 0.0, "quantizer": 1.0,
                                 "gan": 0.1}
    )

    def __post_init__(self):
        if self.kind != "image":
            raise ValueError(f"kind must be 'image' here, got {self.kind!r}")
        f = self.downsample_factor
        if f < 1 or f & (f - 1):
            raise ValueError(f"downsample_factor must be a power of 2, got {f}")
        levels = int(math.log2(f)) + 1
        if self.channel_mult is None:
            if levels > len(_DEFAULT_MULT):
                raise ValueError(f"give channel_mult for downsample_factor {f}")
            self.channel_mult = _DEFAULT_MULT[:levels]
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        if len(self.channel_mult) != levels:
            raise ValueError(f"channel_mult {self.channel_mult} has {len(self.channel_mult)} "
                             f"levels; downsample_factor {f} needs {levels}")
        self.fsq_levels = tuple(int(v) for v in self.fsq_levels)
        if self.resolution % f:
            raise ValueError(f"resolution {self.resolution} is not divisible by "
                             f"downsample_factor {f}")
        if self.quantizer not in ("vq", "rvq", "fsq"):
            raise ValueError(f"quantizer must be 'vq', 'rvq' or 'fsq', got {self.quantizer!r}")
        if self.codebook_size < 2:
            raise ValueError(f"codebook_size must be ≥ 2, got {self.codebook_size}")
        if self.quantizer == "fsq":
            self.codebook_size = math.prod(self.fsq_levels)

    @property
    def grid_size(self) -> int:
        """Codes per side: resolution / f."""
        return self.resolution // self.downsample_factor

    @property
    def tokens_per_image(self) -> int:
        return self.grid_size ** 2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImageTokenizerOutput:
    reconstruction: torch.Tensor  # (B, 3, H, W) in the model's [-1, 1] space, unclamped
    quantizer: QuantizerOutput


class ImageTokenizer(
    QuietLocalLoading,
    nn.Module,
    PyTorchModelHubMixin,
    library_name="speechtok-lm",
    tags=["image-tokenizer", "vqgan", "vq-vae", "speechtok-lm"],
):
    """Images ↔ code grids. `encode(images)` → LongTensor `(batch, h, w)`; `decode(grid)` →
    float `(batch, 3, H, W)` in [0, 1]. Save/load with `save_pretrained` / `from_pretrained`
    (config.json + model.safetensors) and share with `push_to_hub`."""

    def __init__(self, config: ImageTokenizerConfig | dict | None = None):
        super().__init__()
        if config is None:
            config = ImageTokenizerConfig()
        elif isinstance(config, dict):
            config = ImageTokenizerConfig(**config)
        self.config = config
        self.encoder = ImageEncoder(config)
        self.quantizer = build_quantizer(config)
        self.decoder = ImageDecoder(config)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def grid_size(self) -> int:
        return self.config.grid_size

    # ---- training -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> ImageTokenizerOutput:
        """Training pass on `x` (B, 3, H, W) already in [-1, 1] at the configured resolution."""
        z = self.encoder(x)  # (B, D, h, w)
        b, d, h, w = z.shape
        q = self.quantizer(z.flatten(2).transpose(1, 2))  # (B, h·w, D)
        quantized = q.quantized.transpose(1, 2).reshape(b, d, h, w)
        q.codes = q.codes.reshape(b, *q.codes.shape[1:-1], h, w)  # (B, h, w) or (B, D, h, w)
        return ImageTokenizerOutput(self.decoder(quantized), q)

    # ---- encoding ---------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, images) -> torch.Tensor:
        """PIL image(s) or a float tensor `(batch, 3, H, W)` in [0, 1] → code grid `(batch, h,
        w)` (`(batch, depth, h, w)` for RVQ). Any size or mode is converted by
        `speechtok.image_io.prepare_images` (RGB; shorter side resized, centre crop)."""
        x = prepare_images(images, self.config.resolution).to(self.device) * 2 - 1
        z = self.encoder(x)
        b, _, h, w = z.shape
        codes = self.quantizer.encode(z.flatten(2).transpose(1, 2))  # (B, h·w) or (B, D, h·w)
        return codes.reshape(b, *codes.shape[1:-1], h, w)

    # ---- decoding ---------------------------------------------------------------------
    def _check_grid(self, grid) -> torch.Tensor:
        grid = torch.as_tensor(grid)
        if grid.dtype.is_floating_point:
            raise ValueError(f"codes must be integer ids, got dtype {grid.dtype}")
        if grid.dim() == 2 and self.config.quantizer != "rvq":
            grid = grid[None]
        if grid.numel() == 0:
            raise ValueError("no codes to decode")
        depth = 1 if self.config.quantizer != "rvq" else 2
        if grid.dim() != 2 + depth:
            raise ValueError(f"expected a code grid (batch, {'depth, ' * (depth - 1)}h, w), "
                             f"got shape {tuple(grid.shape)}")
        bad = (grid < 0) | (grid >= self.config.codebook_size)
        if bad.any():
            raise ValueError(f"image code {int(grid[bad][0])} is out of range "
                             f"[0, {self.config.codebook_size})")
        return grid.long().to(self.device)

    @torch.inference_mode()
    def decode(self, grid) -> torch.Tensor:
        """Code grid `(batch, h, w)` → images `(batch, 3, h·f, w·f)` float in [0, 1]."""
        grid = self._check_grid(grid)
        b, h, w = grid.shape[0], grid.shape[-2], grid.shape[-1]
        z = self.quantizer.decode(grid.flatten(-2))  # (B, h·w, D)
        x = self.decoder(z.transpose(1, 2).reshape(b, -1, h, w))
        return ((x.float() + 1) / 2).clamp(0, 1)
