"""Where training images come from: a folder of image files, or a `datasets` dataset on disk.

A folder may hold `train/` and `valid/` (and `test/`) subfolders, each optionally with a
`metadata.jsonl` of `{"file_name": ..., "text": caption, ...}` rows (the `datasets`
"imagefolder" layout, which the built-in corpus writes). A saved dataset needs an image column
("image" by default) and may have a caption column. Every image goes through
`image_io.prepare_images` (RGB, resize shorter side, centre crop) and is kept as uint8 in a
cache bounded in MB, so epochs of a corpus that fits cost no decoding and memory stays bounded
for one that does not. Batches are a function of the step number, so a resumed run sees the
batches the killed run would have seen.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from speechtok.image.io import load_image, open_pil, prepare_images
from speechtok.jsonl import jsonl_rows
from speechtok.memory_cache import BoundedCache
from speechtok.splits import MediaItem, encoded_rows, hold_out, is_saved_dataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class ImageItem(MediaItem):
    """An image file or a dataset row's encoded image."""

    def open(self):
        if self.path is not None:
            return load_image(self.path)
        return open_pil(io.BytesIO(self.data), f"dataset row {self.name}")


class ImageSource:
    """A list of image items, loaded at one resolution as uint8 (B, 3, R, R) on demand,
    keeping up to `cache_mb` MB of the most recently used ones decoded.

    With `crop_scale` (lo, hi) below (1, 1), training batches are random square crops of a
    side drawn in [lo, hi] × the shorter side, resized to R, and with `flip` half of them are
    mirrored (the random-resized-crop augmentation of photo models, Szegedy et al. 2015, at a
    square aspect). For that each image is cached at a shorter side of R / lo (not at full
    size: a crop of the cached copy is the crop of the original, downscaled first), and
    `load`/`pixels` still give the centre crops that evaluation uses."""

    def __init__(self, items: list[ImageItem], resolution: int, cache_mb: float = 0.0,
                 crop_scale: tuple[float, float] = (1.0, 1.0), flip: bool = False):
        if not items:
            raise ValueError("no images found")
        lo, hi = crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low ≤ high ≤ 1, got {crop_scale}")
        self.items, self.resolution = items, resolution
        self.crop_scale, self.flip = (float(lo), float(hi)), flip
        self.cache = BoundedCache(cache_mb)
        self.full_cache = BoundedCache(cache_mb)

    @property
    def augments(self) -> bool:
        return self.crop_scale != (1.0, 1.0) or self.flip

    def _load_full(self, i: int) -> torch.Tensor:
        """Item i as uint8 (3, H, W) with its shorter side at R / crop_scale[0]."""
        def decode() -> torch.Tensor:
            img = prepare_images(self.items[i].open(), None)[0]  # RGB, unresized
            short = math.ceil(self.resolution / self.crop_scale[0])
            h, w = img.shape[-2:]
            if min(h, w) > short:
                size = (max(short, round(h * short / min(h, w))),
                        max(short, round(w * short / min(h, w))))
                img = F.interpolate(img[None], size=size, mode="bicubic", antialias=True,
                                    align_corners=False)[0]
            return (img.clamp(0, 1) * 255).round().to(torch.uint8)
        return self.full_cache.get(i, decode)

    def _random_crop(self, i: int, g: torch.Generator) -> torch.Tensor:
        img = self._load_full(i).float() / 255.0
        h, w = img.shape[-2:]
        lo, hi = self.crop_scale
        side = max(1, round(min(h, w) * (lo + (hi - lo) * float(torch.rand(1, generator=g)))))
        top = int(torch.randint(h - side + 1, (1,), generator=g))
        left = int(torch.randint(w - side + 1, (1,), generator=g))
        crop = img[None, :, top:top + side, left:left + side]
        if side != self.resolution:
            crop = F.interpolate(crop, size=(self.resolution,) * 2, mode="bicubic",
                                 antialias=True, align_corners=False)
        if self.flip and float(torch.rand(1, generator=g)) < 0.5:
            crop = crop.flip(-1)
        return crop[0].clamp(0, 1)

    def __len__(self) -> int:
        return len(self.items)

    def describe(self) -> str:
        return f"{len(self)} images"

    def _load_one(self, i: int) -> torch.Tensor:
        return self.cache.get(i, lambda: (prepare_images(self.items[i].open(), self.resolution)[0]
                                          * 255).round().to(torch.uint8))

    def pixels(self) -> torch.Tensor:
        """Every image as uint8 (N, 3, R, R) (for evaluation sets, which are small)."""
        return torch.stack([self._load_one(i) for i in range(len(self))])

    def load(self, indices) -> torch.Tensor:
        """Float (len(indices), 3, R, R) in [0, 1]."""
        return torch.stack([self._load_one(int(i)) for i in indices]).float() / 255.0

    def batch(self, step: int, batch_size: int, seed: int, process_index: int = 0
              ) -> torch.Tensor:
        """The (batch_size, 3, R, R) training batch of `step` (deterministic)."""
        g = torch.Generator().manual_seed(hash((seed, step, process_index)) % (2**63))
        indices = torch.randint(len(self), (batch_size,), generator=g)
        if not self.augments:
            return self.load(indices)
        return torch.stack([self._random_crop(int(i), g) for i in indices])


class StreamingImageSource:
    """Training images from a stream (speechtok.streaming): step s's batch is the stream's rows
    [s·B, (s+1)·B) of this process."""

    def __init__(self, stream, resolution: int):
        self.stream, self.resolution = stream, resolution

    def describe(self) -> str:
        return f"streamed from {self.stream.data}"

    def batch(self, step: int, batch_size: int, seed: int, process_index: int = 0
              ) -> torch.Tensor:
        items = [ImageItem(it.name, it.path, it.data, it.meta)
                 for it in self.stream.rows(step * batch_size, batch_size)]
        return ImageSource(items, self.resolution).load(range(len(items)))


def open_image_stream_splits(data: str | Path, resolution: int, seed: int, process_index: int,
                             num_processes: int, valid_rows: int, shuffle_buffer: int,
                             image_column: str = "image"
                             ) -> tuple[StreamingImageSource, ImageSource]:
    """(train stream, held-out images): the first `valid_rows` rows are the held-out ones."""
    from datasets import Image

    from speechtok.streaming import MediaStream

    stream = MediaStream(data, image_column, Image(decode=False), seed, process_index,
                         num_processes, valid_rows, shuffle_buffer)
    held_out = [ImageItem(it.name, it.path, it.data, it.meta) for it in stream.head()]
    return StreamingImageSource(stream, resolution), ImageSource(held_out, resolution)


def _folder_items(folder: Path) -> list[ImageItem]:
    meta: dict[str, dict] = {}
    meta_file = folder / "metadata.jsonl"
    if meta_file.exists():
        for n, row in jsonl_rows(meta_file, what="bad metadata line"):
            try:
                meta[row["file_name"]] = row
            except (KeyError, TypeError) as err:
                raise ValueError(f"{meta_file}:{n}: bad metadata line ({err})") from err
    if meta:
        return [ImageItem(name, folder / name, meta=row) for name, row in meta.items()]
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [ImageItem(str(p.relative_to(folder)), p) for p in files]


def _image_column(dataset, column: str | None) -> str:
    from datasets import Image

    if column is not None:
        if column not in dataset.column_names:
            raise ValueError(f"dataset has no column {column!r} (columns: "
                             f"{', '.join(dataset.column_names)})")
        return column
    for name, feature in dataset.features.items():
        if isinstance(feature, Image):
            return name
    if "image" in dataset.column_names:
        return "image"
    raise ValueError(f"dataset has no image column (columns: {', '.join(dataset.column_names)})")


def _dataset_items(dataset, column: str | None = None) -> list[ImageItem]:
    from datasets import Image

    column = _image_column(dataset, column)
    return [ImageItem(name, path, data, meta)
            for name, data, path, meta in encoded_rows(dataset, column, Image(decode=False))]


def _saved_splits(path: Path) -> dict[str, list[ImageItem]]:
    from datasets import load_from_disk

    ds = load_from_disk(str(path))
    if hasattr(ds, "keys"):  # DatasetDict
        return {name: _dataset_items(ds[name]) for name in ds}
    return {"train": _dataset_items(ds)}


def _folder_splits(path: Path) -> dict[str, list[ImageItem]]:
    splits = {s: path / s for s in ("train", "valid", "validation", "test")
              if (path / s).is_dir()}
    if "train" in splits:
        return {s: _folder_items(folder) for s, folder in splits.items()}
    return {"train": _folder_items(path)}


def open_image_splits(path: str | Path, resolution: int, valid_fraction: float = 0.05,
                      seed: int = 0, cache_mb: float = 0.0,
                      crop_scale: tuple[float, float] = (1.0, 1.0), flip: bool = False
                      ) -> tuple[ImageSource, ImageSource]:
    """(train, valid) sources, each caching up to `cache_mb` MB of decoded images. `valid/` (or
    `validation/`) is used when present; otherwise a deterministic `valid_fraction` of the
    training images is held out. `crop_scale` and `flip` augment the training batches
    (ImageSource)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data not found: {path}")
    splits = _saved_splits(path) if is_saved_dataset(path) else _folder_splits(path)
    if "train" not in splits:
        raise ValueError(f"{path}: no 'train' split (have {', '.join(splits)})")
    train = splits["train"]
    valid = splits.get("valid") or splits.get("validation")
    if not valid:
        train, valid = hold_out(train, valid_fraction, seed, f"{path} (images)")
    return (ImageSource(train, resolution, cache_mb, crop_scale, flip),
            ImageSource(valid, resolution, cache_mb))


def open_image_eval_source(path: str | Path, resolution: int, split: str | None = None
                           ) -> ImageSource:
    """The images to evaluate: `split` (default test, else valid/validation, else all)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data not found: {path}")
    splits = _saved_splits(path) if is_saved_dataset(path) else _folder_splits(path)
    if split is None:
        split = next((s for s in ("test", "valid", "validation", "train") if s in splits), None)
    if split not in splits:
        raise ValueError(f"{path}: no split {split!r} (have {', '.join(splits)})")
    return ImageSource(splits[split], resolution)
