"""Loss terms of the image tokenizer (VQGAN, Esser et al. 2021) as pure functions; their weights
live in `ImageTokenizerConfig.loss_weights`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute pixel error."""
    return F.l1_loss(pred, target)


def l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel error (what PSNR measures)."""
    return F.mse_loss(pred, target)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss (Lim & Ye 2017; taming's `hinge_d_loss`):
    ½ (E[relu(1 − D(x))] + E[relu(1 + D(x̂))])."""
    return 0.5 * (F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge GAN: −E[D(x̂)]."""
    return -logits_fake.mean()


def adaptive_gan_weight(rec_loss: torch.Tensor, gan_loss: torch.Tensor,
                        last_layer: torch.Tensor, delta: float = 1e-4,
                        max_weight: float = 1e4) -> torch.Tensor:
    """VQGAN eq. 7: λ = ||∇_{G_L} L_rec|| / (||∇_{G_L} L_GAN|| + δ), with G_L the decoder's last
    layer, so the GAN term never swamps reconstruction whatever their scales. Clamped to
    [0, max_weight] and detached, as in taming-transformers."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (gan_grad.norm() + delta)
    return weight.clamp(0.0, max_weight).detach()
