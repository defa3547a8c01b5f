"""Reconstruction quality of images: PSNR and SSIM, per image, for batches in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image (B,): 10 log10(range² / MSE)."""
    mse = ((pred.float() - target.float()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-12))


def _gaussian_window(size: int, sigma: float, device) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0,
         window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity of each image (B,) (Wang et al. 2004): an 11×11 Gaussian window
    (σ = 1.5, shrunk to the image for tiny images), K1 = 0.01, K2 = 0.03, per channel over
    valid positions, then averaged (population statistics, as in the paper)."""
    x, y = pred.float(), target.float()
    c = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2])
    w = _gaussian_window(window, sigma, x.device).expand(c, 1, window, window)

    def blur(t):
        return F.conv2d(t, w, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx ** 2
    syy = blur(y * y) - my ** 2
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)
