"""Two grids of codes, VQ-VAE-2 style (Razavi et al. 2019): a coarse grid at half the side of
the fine one holds the global layout, and the fine grid, quantized given the coarse one, holds
the detail.

    encoder latent z (B, D, h, w) ─► stride-2 conv ─► z_top (B, D, h/2, w/2) ─► top quantizer
        ─► coarse codes; their vectors ─► transposed conv ─► up (B, D, h, w)
    [z, up] ─► 1×1 conv ─► bottom quantizer (the tokenizer's own) ─► fine codes
    [fine vectors, up] ─► 1×1 conv ─► the decoder

The codes of an image are one flat sequence, the coarse grid then the fine one, each in raster
order: (batch, (h/2)² + h²). An LM models them in that order (coarse first, as VQ-VAE-2's
top prior comes before its bottom prior; lm.vocab's `image_segments`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..quantization import QuantizerOutput, build_quantizer


def _to_map(v: torch.Tensor, side: int) -> torch.Tensor:
    """(B, side², D) → (B, D, side, side)."""
    return v.transpose(1, 2).reshape(v.shape[0], -1, side, side)


def _to_rows(m: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) → (B, h·w, D)."""
    return m.flatten(2).transpose(1, 2)


class TwoLevelLatents(nn.Module):
    """The coarse level and the joins around the tokenizer's quantizer (module docstring)."""

    def __init__(self, config):
        super().__init__()
        d = config.latent_dim
        self.fine_side = config.grid_size
        self.coarse_side = config.grid_size // 2
        self.top_encoder = nn.Sequential(nn.Conv2d(d, d, 4, stride=2, padding=1), nn.SiLU(),
                                         nn.Conv2d(d, d, 3, padding=1))
        self.top_quantizer = build_quantizer(config, d)
        self.top_decoder = nn.ConvTranspose2d(d, d, 4, stride=2, padding=1)
        self.bottom_in = nn.Conv2d(2 * d, d, 1)
        self.decoder_in = nn.Conv2d(2 * d, d, 1)

    @property
    def segments(self) -> list[int]:
        """Codes of each grid, coarse first."""
        return [self.coarse_side ** 2, self.fine_side ** 2]

    def forward(self, z: torch.Tensor, quantizer: nn.Module
                ) -> tuple[torch.Tensor, QuantizerOutput]:
        """(the decoder's input, both levels' quantizer output in one: codes coarse then fine,
        losses summed, the fine level's metrics plus "usage_top")."""
        top = self.top_quantizer(_to_rows(self.top_encoder(z)))
        up = self.top_decoder(_to_map(top.quantized, self.coarse_side))
        bottom = quantizer(_to_rows(self.bottom_in(torch.cat([z, up], 1))))
        x = self.decoder_in(torch.cat([_to_map(bottom.quantized, self.fine_side), up], 1))
        losses = {k: bottom.losses.get(k, 0) + top.losses.get(k, 0)
                  for k in {**bottom.losses, **top.losses}}
        metrics = {**bottom.metrics}
        if "usage" in top.metrics:
            metrics["usage_top"] = top.metrics["usage"]
        return x, QuantizerOutput(bottom.quantized, torch.cat([top.codes, bottom.codes], 1),
                                  bottom.loss + top.loss, losses, metrics)

    def encode(self, z: torch.Tensor, quantizer: nn.Module) -> torch.Tensor:
        """Latent (B, D, h, w) → flat codes (B, (h/2)² + h²)."""
        top = self.top_quantizer.encode(_to_rows(self.top_encoder(z)))
        up = self.top_decoder(_to_map(self.top_quantizer.decode(top), self.coarse_side))
        bottom = quantizer.encode(_to_rows(self.bottom_in(torch.cat([z, up], 1))))
        return torch.cat([top, bottom], 1)

    def decode(self, codes: torch.Tensor, quantizer: nn.Module) -> torch.Tensor:
        """Flat codes (B, (h/2)² + h²) → the decoder's input (B, D, h, w)."""
        n_top = self.segments[0]
        up = self.top_decoder(_to_map(self.top_quantizer.decode(codes[:, :n_top]),
                                      self.coarse_side))
        fine = _to_map(quantizer.decode(codes[:, n_top:]), self.fine_side)
        return self.decoder_in(torch.cat([fine, up], 1))
