"""Discriminators for adversarial tokenizer training."""

from __future__ import annotations

import torch
from torch import nn

from speechtok.image.modules import group_norm


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017, pix2pix; the NLayerDiscriminator of taming-transformers):
    strided 4×4 convs whose output is a grid of real/fake logits, one per overlapping patch.

    GroupNorm replaces taming's BatchNorm so that the logits of an image do not depend on the
    rest of its batch (or on how a batch is split across processes).
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, n_layers: int = 3,
                 norm_groups: int = 32):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1),
                                   nn.LeakyReLU(0.2, True)]
        ch = channels
        for i in range(1, n_layers + 1):
            out = channels * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(ch, out, 4, stride, 1, bias=False), group_norm(out, norm_groups),
                       nn.LeakyReLU(0.2, True)]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] → (B, 1, h, w) patch logits."""
        return self.net(x)


def _init(m: nn.Module) -> None:
    # DCGAN initialisation, as taming's weights_init.
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.GroupNorm):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
