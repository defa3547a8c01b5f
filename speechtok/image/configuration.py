"""ImageTokenizerConfig: everything needed to rebuild an ImageTokenizer; saved as config.json."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..fields import option
from ..quantization import QuantizerConfig

_DEFAULT_MULT = (1, 2, 2, 4, 4)


@dataclass
class ImageTokenizerConfig(QuantizerConfig):
    """The VQGAN: conv encoder to an (H/f × W/f) latent grid, quantizer (the inherited block),
    conv decoder. Derived figures are properties: `grid_size`, `tokens_per_image`."""

    kind: str = option("image", "what the tokenizer is for; always 'image' here")
    resolution: int = option(32, "images are resized and centre-cropped to this square, pixels")
    in_channels: int = option(3, "colour channels of the input")
    downsample_factor: int = option(4, "f, a power of 2: an R×R image becomes an (R/f)×(R/f) "
                                    "grid")
    channels: int = option(64, "channels of the first encoder level")
    channel_mult: tuple[int, ...] | None = option(None, "channel multiplier per level (log2 f "
                                                  "+ 1 levels); none = (1, 2, 2, 4, 4)[:levels]")
    num_res_blocks: int = option(1, "residual blocks per level")
    norm_groups: int = option(32, "groups of the group norms")
    dropout: float = option(0.0, "dropout in the residual blocks")
    latent_dim: int = option(64, "channels of the latents the quantizer sees")
    hierarchy: int = option(1, "grids of codes: 1, or 2 for VQ-VAE-2's coarse grid (half the "
                            "side) conditioning the fine one; codes flat, coarse grid first")
    codebook_dim: int | None = option(8, "look codes up in this many dimensions after a linear "
                                      "projection (factorised codes); none = latent_dim")
    loss_weights: dict[str, float] = option(
        {"l1": 1.0, "l2": 1.0, "perceptual": 0.0, "quantizer": 1.0, "gan": 0.1},
        "weight of each training loss term: l1, l2, perceptual, quantizer, gan")

    def __post_init__(self):
        super().__post_init__()
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
        if self.resolution % f:
            raise ValueError(f"resolution {self.resolution} is not divisible by "
                             f"downsample_factor {f}")
        if self.hierarchy not in (1, 2):
            raise ValueError(f"hierarchy must be 1 or 2 grids, got {self.hierarchy}")
        if self.hierarchy == 2 and (self.code_depth > 1 or self.grid_size % 2):
            raise ValueError("a two-grid hierarchy needs one code a cell (not a residual "
                             f"quantizer) and an even grid side, got {self.quantizer} with a "
                             f"{self.grid_size}-cell side")

    @property
    def grid_size(self) -> int:
        """Codes per side: resolution / f."""
        return self.resolution // self.downsample_factor

    @property
    def segments(self) -> list[int] | None:
        """Codes of each grid of a hierarchy, coarse first (None for one grid)."""
        return [(self.grid_size // 2) ** 2, self.grid_size ** 2] if self.hierarchy == 2 else None

    @property
    def tokens_per_image(self) -> int:
        """Code positions of an image (per residual level): the grid, or both grids."""
        return sum(self.segments) if self.segments else self.grid_size ** 2

    def to_dict(self) -> dict:
        return asdict(self)
