"""Image loading and the one preprocessing rule every image tokenizer input goes through.

The rule (`prepare_images`), applied to each image:
  1. mode → RGB: greyscale is repeated over three channels; an alpha channel is composited
     over white (a transparent glyph background becomes white, not black);
  2. size → resolution × resolution: if it is not already that size, the shorter side is
     resized to `resolution` (bicubic, antialiased), then the centre square is cropped.
     An image already at the resolution is passed through untouched.
Tensors must be float in [0, 1] (or uint8 in [0, 255]), shaped (3, H, W), (1, H, W) or
(4, H, W), or batched (B, C, H, W). PIL images of any mode are accepted.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F


def _pil_to_tensor(img) -> torch.Tensor:
    """A PIL image of any mode → float (C, H, W) in [0, 1] with C in {1, 3, 4}."""
    import numpy as np

    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit greyscale (PNG opens it as I;16 or I): PIL's convert clips it at 255, which
        # turns all but the darkest 1/256 of the range white; scale the full range instead
        arr = np.asarray(img, dtype=np.float32) / 65535.0
        return torch.from_numpy(arr.clip(0, 1).copy())[None]
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if "transparency" in img.info or "A" in img.mode else "RGB")
    if img.mode == "LA":
        img = img.convert("RGBA")
    arr = np.asarray(img, dtype=np.uint8)
    t = torch.from_numpy(arr.copy())
    t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
    return t.float() / 255.0


def _to_rgb(x: torch.Tensor, what: str) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] with C in {1, 3, 4} → (B, 3, H, W)."""
    c = x.shape[1]
    if c == 3:
        return x
    if c == 1:
        return x.expand(-1, 3, -1, -1)
    if c == 4:
        rgb, alpha = x[:, :3], x[:, 3:]
        return rgb * alpha + (1 - alpha)  # over white
    raise ValueError(f"{what}: expected 1, 3 or 4 channels, got {c}")


MAX_ASPECT = 100  # sides further apart than this are not a picture (a 1 × 1,000,000 PNG is 2 KB)


class ImageShapeError(ValueError):
    """An image whose sides are empty or absurdly far apart."""


def _check_shape(h: int, w: int, what: str) -> None:
    """Refuse, before any resize, an image whose sides are empty or absurdly far apart."""
    if min(h, w) < 1:
        raise ImageShapeError(f"{what}: empty image ({w}×{h})")
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise ImageShapeError(f"{what}: {w}×{h} pixels, an aspect ratio over {MAX_ASPECT}:1; "
                              "crop it to the part to encode first")


def _resize_center_crop(x: torch.Tensor, resolution: int | None) -> torch.Tensor:
    h, w = x.shape[-2:]
    if resolution is None or h == w == resolution:
        return x
    _check_shape(h, w, "image")
    scale = resolution / min(h, w)
    if max(h, w) > 4 * min(h, w):
        # an elongated image: cut the long side to the centre that survives the crop (plus the
        # resampling kernel's reach, 2 / scale pixels a side for bicubic) before resizing, so
        # memory follows the output, not the long side times the scale
        keep = min(h, w) + 2 * (math.ceil(4 / min(scale, 1.0)) + 2)
        top, left = max(0, (h - keep) // 2), max(0, (w - keep) // 2)
        x = x[..., top:top + min(h, keep), left:left + min(w, keep)]
        h, w = x.shape[-2:]
    nh = max(resolution, math.ceil(h * scale - 1e-6))
    nw = max(resolution, math.ceil(w * scale - 1e-6))
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    top, left = (nh - resolution) // 2, (nw - resolution) // 2
    return x[..., top:top + resolution, left:left + resolution].clamp(0, 1)


def _tensor_batch(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    if not x.dtype.is_floating_point:
        raise ValueError(f"image tensors must be float in [0, 1] or uint8, got {x.dtype}")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4:
        raise ValueError(f"image tensor must be (C, H, W) or (B, C, H, W), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"empty image tensor {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("image tensor contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"image values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}] "
                         "(divide uint8 pixels by 255; undo [-1, 1] normalisation)")
    return x.float().clamp(0, 1)


def prepare_images(images, resolution: int | None) -> torch.Tensor:
    """PIL image(s) or a tensor → float (B, 3, resolution, resolution) in [0, 1] (see module
    docstring for the rule); `resolution` None keeps the size (step 2 skipped; several images
    must then share one size)."""
    if isinstance(images, torch.Tensor):
        return _resize_center_crop(_to_rgb(_tensor_batch(images), "image tensor"), resolution)
    if not isinstance(images, (list, tuple)):
        images = [images]
    if not images:
        raise ValueError("no images given")
    out = []
    for i, img in enumerate(images):
        if isinstance(img, torch.Tensor):
            t = _tensor_batch(img)
        elif hasattr(img, "convert") and hasattr(img, "size"):  # a PIL image
            t = _pil_to_tensor(img)[None]
        else:
            raise ValueError(f"image {i}: expected a PIL image or tensor, got {type(img).__name__}")
        out.append(_resize_center_crop(_to_rgb(t, f"image {i}"), resolution))
    return torch.cat(out)


def open_pil(source, name: str):
    """Open a file path or a binary file object as a fully read PIL image; a corrupt image, or
    one over PIL's decompression-bomb limit (Image.MAX_IMAGE_PIXELS, 89 megapixels: decoding
    a 20,000 × 20,000 PNG would take 1.2 GB), is a ValueError naming `name`."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # PIL only warns between 1× and 2× the limit; a photo that large is refused too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                _check_shape(img.size[1], img.size[0], name)  # before decoding any pixel
                img.load()
                return img.copy()
    except ImageShapeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(f"{name}: image too large to decode safely ({err}). If you trust "
                         "the file, raise PIL.Image.MAX_IMAGE_PIXELS, or downscale it first"
                         ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{name}: cannot read image ({err})") from err


def load_image(path: str | Path):
    """Open an image file as PIL (fully read, so a corrupt file fails here, naming it; so
    does a decompression bomb)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    return open_pil(path, str(path))


def save_image(image, path: str | Path) -> None:
    """Save a PIL image (format from the suffix) so that it appears whole or not at all."""
    from speechtok.atomic import atomic_path

    with atomic_path(path) as tmp:
        image.save(tmp)


def to_pil(x: torch.Tensor):
    """(3, H, W) float in [0, 1] → PIL RGB image."""
    from PIL import Image

    arr = (x.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def image_grid(rows: list[torch.Tensor], pad: int = 2):
    """Rows of (N, 3, H, W) images → one PIL image, rows stacked top to bottom, grey padding."""
    n = max(r.shape[0] for r in rows)
    h, w = rows[0].shape[-2:]
    canvas = torch.full((3, len(rows) * (h + pad) + pad, n * (w + pad) + pad), 0.5)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[:, y:y + h, x:x + w] = img.detach().float().cpu().clamp(0, 1)
    return to_pil(canvas)
