"""Does a generated image show what its caption asked for? A classifier trained on real images
answers (the "classification accuracy score" idea of Ravuri & Vinyals 2019, here used as in
the seeds: a judge trained on real data, applied to generated data).

`train_classifier` fits a small CNN on labelled real images (uint8 `(N, 3, H, W)`); its accuracy
on real held-out images is the reference a generator can at best reach, and
`ImageClassifier.accuracy(generated, requested_labels)` is the generator's score. Labels are
strings (a glyph's character, a class name). Saved as `model.safetensors` + `classes.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
                         nn.MaxPool2d(2))


class SmallCNN(nn.Module):
    """Three conv blocks and an MLP on the flattened map: flattening (not global pooling) keeps
    where and how large the shape is, which tells 'o' from 'O' in a glyph font."""

    def __init__(self, num_classes: int, resolution: int = 32, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(_block(3, width), _block(width, 2 * width),
                                      _block(2 * width, 4 * width))
        side = resolution // 8
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2),
                                  nn.Linear(4 * width * side * side, 256), nn.SiLU(),
                                  nn.Linear(256, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [0, 1]
        return self.head(self.features(x * 2 - 1))


def _shift(x: torch.Tensor, gen: torch.Generator, max_shift: int) -> torch.Tensor:
    """Random translation by up to `max_shift` pixels, filling with the border colour."""
    if not max_shift:
        return x
    pad = nn.functional.pad(x, [max_shift] * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2,), generator=gen).tolist()
    return pad[..., dy: dy + x.shape[-2], dx: dx + x.shape[-1]]


class ImageClassifier:
    def __init__(self, model: SmallCNN, classes: list[str], resolution: int):
        self.model, self.classes, self.resolution = model.eval(), list(classes), resolution
        self.index = {c: i for i, c in enumerate(self.classes)}

    @torch.inference_mode()
    def predict(self, images: torch.Tensor, batch_size: int = 256) -> list[str]:
        """Images `(N, 3, H, W)`, uint8 or float in [0, 1], at the training resolution."""
        if images.shape[-1] != self.resolution or images.shape[-2] != self.resolution:
            raise ValueError(f"the classifier takes {self.resolution}×{self.resolution} images, "
                             f"got {tuple(images.shape[-2:])}")
        device = next(self.model.parameters()).device
        out = []
        for i in range(0, len(images), batch_size):
            x = images[i: i + batch_size].to(device)
            x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
            out += self.model(x).argmax(-1).tolist()
        return [self.classes[k] for k in out]

    def accuracy(self, images: torch.Tensor, labels: list[str]) -> float:
        unknown = sorted(set(labels) - set(self.classes))
        if unknown:
            raise ValueError(f"labels the classifier never saw: {unknown[:5]}")
        predicted = self.predict(images)
        return sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels)

    def save_pretrained(self, path: str | Path) -> None:
        from safetensors.torch import save_model

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_model(self.model, str(path / "model.safetensors"))
        (path / "classes.json").write_text(json.dumps(
            {"classes": self.classes, "resolution": self.resolution,
             "width": self.model.features[0][0].out_channels}))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ImageClassifier:
        from safetensors.torch import load_model

        path = Path(path)
        meta = json.loads((path / "classes.json").read_text())
        model = SmallCNN(len(meta["classes"]), meta["resolution"], meta["width"])
        load_model(model, str(path / "model.safetensors"))
        return cls(model, meta["classes"], meta["resolution"])


def train_classifier(images: torch.Tensor, labels: list[str], epochs: int = 8,
                     batch_size: int = 128, lr: float = 2e-3, max_shift: int = 1, seed: int = 0,
                     progress: bool = True, width: int = 32) -> ImageClassifier:
    """Fit a `SmallCNN` on uint8 images `(N, 3, R, R)` with string `labels` (AdamW, cosine
    schedule, small random shifts as augmentation); `width`: channels of the first block."""
    if len(images) != len(labels) or not len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    y = torch.tensor([index[t] for t in labels])
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SmallCNN(len(classes), images.shape[-1], width)
    steps = epochs * -(-len(y) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    model.train()
    bar = tqdm(total=steps, desc="classifier", disable=not progress)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(batch_size):
            x = _shift(images[idx].float() / 255, gen, max_shift)
            loss = nn.functional.cross_entropy(model(x), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return ImageClassifier(model, classes, images.shape[-1])
