"""ImageTokenizer: images ↔ grids of discrete codes, a VQGAN (Esser et al. 2021).

    image (B, 3, H, W) in [0, 1] ─► [-1, 1] ─► conv encoder ─► (B, D, H/f, W/f)
        ─► VectorQuantizer (low-dim l2-normalised codes, ViT-VQGAN / LlamaGen) ─► grid (B, h, w)
    grid ─► codebook vectors ─► conv decoder ─► image (B, 3, H, W) in [0, 1]

Training adds L1/L2 reconstruction, an optional perceptual loss, and a PatchGAN with hinge loss
and the adaptive weight (speechtok.image.train); the tokenizer itself is just the autoencoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from ..hub.loading import QuietLocalLoading
from ..quantization import QuantizerOutput, build_quantizer
from ..tokenizer.interface import MediaTokenizer
from ..tokenizer.layout import CodeLayout
from .configuration import ImageTokenizerConfig
from .hierarchy import TwoLevelLatents
from .io import prepare_images
from .modules import ImageDecoder, ImageEncoder


@dataclass
class ImageTokenizerOutput:
    reconstruction: torch.Tensor  # (B, 3, H, W) in the model's [-1, 1] space, unclamped
    quantizer: QuantizerOutput


class ImageTokenizer(
    MediaTokenizer,
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
        self.quantizer = build_quantizer(config, config.latent_dim)
        # VQ-VAE-2's coarse grid around that quantizer (speechtok.image.hierarchy), or none
        self.hierarchy = TwoLevelLatents(config) if config.hierarchy == 2 else None
        self.decoder = ImageDecoder(config)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    modality = "image"

    @property
    def layout(self) -> CodeLayout:
        c = self.config
        return CodeLayout("image", c.codebook_size, c.code_depth, resolution=c.resolution,
                          grid=c.grid_size, segments=tuple(c.segments) if c.segments else None)

    @property
    def grid_size(self) -> int:
        return self.config.grid_size

    # ---- training -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> ImageTokenizerOutput:
        """Training pass on `x` (B, 3, H, W) already in [-1, 1] at the configured resolution."""
        z = self.encoder(x)  # (B, D, h, w)
        if self.hierarchy is not None:  # codes (B, coarse + fine)
            decoder_in, q = self.hierarchy(z, self.quantizer)
            return ImageTokenizerOutput(self.decoder(decoder_in), q)
        b, d, h, w = z.shape
        q = self.quantizer(z.flatten(2).transpose(1, 2))  # (B, h·w, D)
        quantized = q.quantized.transpose(1, 2).reshape(b, d, h, w)
        q.codes = q.codes.reshape(b, *q.codes.shape[1:-1], h, w)  # (B, h, w) or (B, D, h, w)
        return ImageTokenizerOutput(self.decoder(quantized), q)

    # ---- encoding ---------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, images) -> torch.Tensor:
        """PIL image(s) or a float tensor `(batch, 3, H, W)` in [0, 1] → code grid `(batch, h,
        w)` (`(batch, depth, h, w)` for RVQ; flat `(batch, (h/2)² + h²)`, coarse grid first,
        for a two-grid hierarchy). Any size or mode is converted by
        `speechtok.image.io.prepare_images` (RGB; shorter side resized, centre crop)."""
        x = prepare_images(images, self.config.resolution).to(self.device) * 2 - 1
        z = self.encoder(x)
        if self.hierarchy is not None:
            return self.hierarchy.encode(z, self.quantizer)
        b, _, h, w = z.shape
        codes = self.quantizer.encode(z.flatten(2).transpose(1, 2))  # (B, h·w) or (B, D, h·w)
        return codes.reshape(b, *codes.shape[1:-1], h, w)

    # ---- decoding ---------------------------------------------------------------------
    def _check_grid(self, grid) -> torch.Tensor:
        grid = torch.as_tensor(grid)
        if grid.dtype.is_floating_point:
            raise ValueError(f"codes must be integer ids, got dtype {grid.dtype}")
        depth = self.config.code_depth
        if self.hierarchy is not None:  # flat (batch, coarse + fine)
            grid = grid[None] if grid.dim() == 1 else grid
            n = self.config.tokens_per_image
            if grid.dim() != 2 or grid.shape[1] != n:
                raise ValueError(f"expected flat codes (batch, {n}): a coarse and a fine grid, "
                                 f"got shape {tuple(grid.shape)}")
        elif grid.dim() == 2 and depth == 1:
            grid = grid[None]
        if grid.numel() == 0:
            raise ValueError("no codes to decode")
        if self.hierarchy is None and grid.dim() != (3 if depth == 1 else 4):
            raise ValueError(f"expected a code grid (batch, {'' if depth == 1 else 'depth, '}h, "
                             f"w), got shape {tuple(grid.shape)}")
        bad = (grid < 0) | (grid >= self.config.codebook_size)
        if bad.any():
            raise ValueError(f"image code {int(grid[bad][0])} is out of range "
                             f"[0, {self.config.codebook_size})")
        return grid.long().to(self.device)

    @torch.inference_mode()
    def decode(self, grid) -> torch.Tensor:
        """Code grid `(batch, h, w)` (or what `encode` gives for RVQ and hierarchies) → images
        `(batch, 3, h·f, w·f)` float in [0, 1]."""
        grid = self._check_grid(grid)
        if self.hierarchy is not None:
            z = self.hierarchy.decode(grid, self.quantizer)
        else:
            b, h, w = grid.shape[0], grid.shape[-2], grid.shape[-1]
            z = self.quantizer.decode(grid.flatten(-2)).transpose(1, 2).reshape(b, -1, h, w)
        x = self.decoder(z)
        return ((x.float() + 1) / 2).clamp(0, 1)
