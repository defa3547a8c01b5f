"""Optional perceptual loss: LPIPS (Zhang et al. 2018, arXiv:1801.03924) on VGG16 features.

Nothing is downloaded. The user gives a local `.safetensors` file holding torchvision's VGG16
`features.*` weights (e.g. converted once from torchvision's checkpoint in a trusted
environment: `save_file({k: v for k, v in vgg16(weights=...).state_dict().items()
if k.startswith("features.")}, "vgg16.safetensors")`). If the same file also holds LPIPS's
learned channel weights (`lin0.model.1.weight` ... `lin4.model.1.weight`), they are used;
otherwise every channel weighs 1 (the "baseline" variant of the LPIPS paper).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# VGG16 "D" configuration; LPIPS taps the ReLU after conv1_2, 2_2, 3_3, 4_3, 5_3.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_TAPS = (3, 8, 15, 22, 29)


class PerceptualLoss(nn.Module):
    """LPIPS distance between two image batches in [-1, 1]; frozen, in eval mode."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        ch = 3
        for v in _VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(ch, v, 3, padding=1), nn.ReLU(inplace=False)]
                ch = v
        self.features = nn.Sequential(*layers)
        widths = [64, 128, 256, 512, 512]
        self.lin = nn.ParameterList([nn.Parameter(torch.ones(1, c, 1, 1)) for c in widths])
        # LPIPS's ScalingLayer: maps [-1, 1] inputs to ImageNet-normalised ones.
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | Path) -> PerceptualLoss:
        from safetensors.torch import load_file

        path = Path(path)
        if path.suffix != ".safetensors":
            raise ValueError(f"{path}: perceptual weights must be a .safetensors file (pickled "
                             "checkpoints are never loaded; see speechtok/perceptual.py)")
        if not path.exists():
            raise FileNotFoundError(f"perceptual weights not found: {path}")
        tensors = load_file(str(path))
        model = cls()
        feats = {k[len("features."):]: v for k, v in tensors.items()
                 if k.startswith("features.")}
        missing, unexpected = model.features.load_state_dict(feats, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: not torchvision VGG16 features (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
        for i, lin in enumerate(model.lin):
            key = f"lin{i}.model.1.weight"
            if key in tensors:
                lin.data.copy_(tensors[key].reshape(lin.shape))
        return model

    def train(self, mode: bool = True) -> PerceptualLoss:
        return super().train(False)  # always frozen

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean LPIPS distance over the batch (a scalar)."""
        x = (torch.cat([pred, target]) - self.shift) / self.scale
        total = pred.new_zeros(())
        tap = 0
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == _TAPS[tap]:
                a, b = x.chunk(2)
                diff = (F.normalize(a, dim=1, eps=1e-10) - F.normalize(b, dim=1, eps=1e-10)) ** 2
                total = total + (diff * self.lin[tap]).sum(1).mean()
                tap += 1
                if tap == len(_TAPS):
                    break
        return total
