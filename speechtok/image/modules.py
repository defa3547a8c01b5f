"""VQGAN encoder and decoder (Esser et al. 2021, "Taming Transformers", arXiv:2012.09841).

The taming-transformers layout: a 3×3 conv in, per resolution level `num_res_blocks` ResNet
blocks (GroupNorm, SiLU, 3×3 convs) then a stride-2 downsampling conv, and at the lowest
resolution a "mid" block ResNet → self-attention → ResNet; the decoder mirrors it with nearest
upsampling and one more ResNet block per level. With L levels the downsampling factor is
f = 2^(L-1). Attention sits only at the lowest resolution, where it is cheap (64 positions for
a 32×32 image at f = 4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with `groups` groups, or fewer when `channels` is not divisible by it."""
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, groups: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = group_norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions (taming's AttnBlock), with PyTorch's fused
    scaled-dot-product attention."""

    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = group_norm(ch, groups)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Stride-2 3×3 conv with taming's asymmetric (0, 1, 0, 1) padding: exact halving."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _mid(ch: int, groups: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(ResnetBlock(ch, ch, groups, dropout), AttnBlock(ch, groups),
                         ResnetBlock(ch, ch, groups, dropout))


class ImageEncoder(nn.Module):
    """(B, 3, H, W) in [-1, 1] → (B, latent_dim, H/f, W/f)."""

    def __init__(self, cfg):
        super().__init__()
        chans = [cfg.channels * m for m in cfg.channel_mult]
        g, p = cfg.norm_groups, cfg.dropout
        self.conv_in = nn.Conv2d(cfg.in_channels, chans[0], 3, padding=1)
        blocks: list[nn.Module] = []
        ch = chans[0]
        for level, out_ch in enumerate(chans):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResnetBlock(ch, out_ch, g, p))
                ch = out_ch
            if level != len(chans) - 1:
                blocks.append(Downsample(ch))
        self.down = nn.Sequential(*blocks)
        self.mid = _mid(ch, g, p)
        self.norm_out = group_norm(ch, g)
        self.conv_out = nn.Conv2d(ch, cfg.latent_dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.down(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))


class ImageDecoder(nn.Module):
    """(B, latent_dim, h, w) → (B, 3, h·f, w·f), unbounded (≈ [-1, 1] after training)."""

    def __init__(self, cfg):
        super().__init__()
        chans = [cfg.channels * m for m in cfg.channel_mult]
        g, p = cfg.norm_groups, cfg.dropout
        ch = chans[-1]
        self.conv_in = nn.Conv2d(cfg.latent_dim, ch, 3, padding=1)
        self.mid = _mid(ch, g, p)
        blocks: list[nn.Module] = []
        for level in reversed(range(len(chans))):
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResnetBlock(ch, chans[level], g, p))
                ch = chans[level]
            if level != 0:
                blocks.append(Upsample(ch))
        self.up = nn.Sequential(*blocks)
        self.norm_out = group_norm(ch, g)
        self.conv_out = nn.Conv2d(ch, cfg.in_channels, 3, padding=1)

    @property
    def last_layer(self) -> torch.Tensor:
        """The weight the adaptive GAN weight is computed at (VQGAN eq. 7)."""
        return self.conv_out.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.up(self.mid(self.conv_in(z)))
        return self.conv_out(F.silu(self.norm_out(h)))
