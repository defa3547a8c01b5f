"""How the tokenizer interface reads, batches and writes images (speechtok.tokenizer.media)."""

from __future__ import annotations

import io
from pathlib import Path

import torch


class ImageMedia:
    """Image files ↔ `(3, resolution, resolution)` float tensors in [0, 1] (shorter side
    resized, centre crop: speechtok.image.io.prepare_images)."""

    name = "image"
    codes_key = "codes"  # the column of pre-tokenised rows (lm.pretokenize)
    suffix = ".png"
    batched = True  # images of one size stack into one encoder call

    def items(self, data: str | Path, split: str | None, layout) -> list:
        from .data import open_image_eval_source

        return open_image_eval_source(data, layout.resolution, split).items

    def read(self, path: str | Path, layout) -> torch.Tensor:
        from .io import load_image, prepare_images

        return prepare_images(load_image(path), layout.resolution)[0]

    def read_bytes(self, data: bytes, name: str, layout) -> torch.Tensor:
        from .io import open_pil, prepare_images

        return prepare_images(open_pil(io.BytesIO(data), name), layout.resolution)[0]

    def encode(self, tokenizer, media: list[torch.Tensor]) -> list[torch.Tensor]:
        """The codes of each image (`(h, w)`, `(depth, h, w)` or a hierarchy's flat codes)."""
        return list(tokenizer.encode(torch.stack(media)).cpu())

    def evaluate(self, tokenizer, data: str | Path, split: str | None,
                 max_items: int | None) -> dict[str, float]:
        """`speechtok eval`'s figures: PSNR, SSIM and code usage (speechtok.image.evaluate)."""
        from .data import open_image_eval_source
        from .evaluate import evaluate_image

        source = open_image_eval_source(data, tokenizer.layout.resolution, split)
        return evaluate_image(tokenizer, source, max_items, progress=True)

    def save(self, path: str | Path, media: torch.Tensor, layout) -> None:
        from .io import save_image, to_pil

        save_image(to_pil(media), path)
