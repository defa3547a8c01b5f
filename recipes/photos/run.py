#!/usr/bin/env python
"""Photographs: an image tokenizer for a folder of your own photos, at 64 px, f = 4.

Data:     a folder of photographs of any size and shape (JPEG, PNG, WebP, ...; searched
          recursively), optionally with a `metadata.jsonl` of {"file_name", "text"} rows (the
          `datasets` imagefolder layout; the titles are kept with the images). An image over
          PIL's decompression-bomb limit (89 megapixels) stops the run with an error naming it.
Stages:   1. split: a seeded 10 % of the photos (at least 4) for test and 5 % (at least 2) for
             valid, the rest train, linked (or copied) into OUT/data/{train,valid,test}
          2. train the image tokenizer (image_tokenizer.yaml: 64-px random crops of 80-100 % of
             the shorter side, mirrored half the time; 16×16 grids of 1,000 FSQ codes)
                                                                      → OUT/image_tokenizer
          3. evaluate on the test photos (the centre 64-px square of each): PSNR, SSIM, code
             use; OUT/image_reconstructions.png (originals above, reconstructions below)
          4. the reference: a 16×16 bicubic thumbnail of each test image (6,144 bits at 8 bits a
             channel), bicubic-upsampled back to 64 px, and its PSNR; the tokenizer's grid
             holds 16 × 16 × log2(1,000) = 2,551 bits
Command:  python recipes/photos/run.py --data my_photos/ --out runs/photos
Result:   OUT/results.json: PSNR / SSIM / code use on the test photos, the thumbnail's PSNR,
          the stage times; the figures measured here are in docs/RESULTS.md.
Time:     under 10 minutes on 2 CPU cores (the training: 850 steps of 8 crops, stopped and
          saved at 8.5 minutes on a slower machine).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

from recipes import common

HERE = Path(__file__).resolve().parent
MODELS = ("image",)
SPLITS = {"test": (0.10, 4), "valid": (0.05, 2)}  # share of the photos, and at least this many


def photo_rows(folder: Path) -> list[dict]:
    """Every image under `folder` as {"file_name": relative path, "text"?: title}."""
    from speechtok.image.data import IMAGE_SUFFIXES

    if not folder.is_dir():
        raise FileNotFoundError(f"--data {folder}: no such folder")
    titles = {}
    meta = folder / "metadata.jsonl"
    if meta.exists():
        for n, line in enumerate(meta.read_text().splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                if "file_name" not in row:
                    raise ValueError(f"{meta}:{n}: no 'file_name'")
                titles[row["file_name"]] = row.get("text")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if len(files) < 10:
        raise ValueError(f"--data {folder}: {len(files)} images; need at least 10 to hold "
                         "some out")
    return [{"file_name": f, **({"text": titles[f]} if titles.get(f) else {})} for f in files]


def split_photos(folder: Path, out: Path, seed: int, max_samples: int | None) -> dict:
    """OUT/data/{train,valid,test} with links to the photos and their metadata.jsonl."""
    import numpy as np

    if (out / "splits.json").exists():
        return json.loads((out / "splits.json").read_text())
    rows = photo_rows(folder)
    order = np.random.default_rng(seed).permutation(len(rows)).tolist()
    parts, start = {}, 0
    for split, (share, least) in SPLITS.items():
        n = max(least, round(share * len(rows)))
        parts[split], start = order[start:start + n], start + n
    parts["train"] = order[start:]
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for split, idx in parts.items():
        idx = idx[:max_samples] if max_samples else idx
        (tmp / split).mkdir(parents=True)
        with open(tmp / split / "metadata.jsonl", "w") as f:
            for i in sorted(idx):
                row = rows[i]
                name = row["file_name"].replace("/", "__")
                target = tmp / split / name
                try:  # a link: a user's photo folder can be large
                    os.symlink((folder / row["file_name"]).resolve(), target)
                except OSError:
                    shutil.copy2(folder / row["file_name"], target)
                f.write(json.dumps({**row, "file_name": name}) + "\n")
    summary = {s: len(list((tmp / s).glob("*"))) - 1 for s in parts}
    (tmp / "splits.json").write_text(json.dumps(summary))
    tmp.rename(out)
    return summary


def thumbnail_reference(data: Path, resolution: int, factor: int) -> dict:
    """PSNR of a (resolution / factor)² bicubic thumbnail of each test image, bicubic-upsampled
    back: what 8-bit RGB pixels at the code grid's size keep."""
    import torch.nn.functional as F

    from speechtok.image.data import open_image_eval_source
    from speechtok.metrics import psnr

    images = open_image_eval_source(data, resolution, "test").pixels().float() / 255.0
    small = resolution // factor
    thumb = F.interpolate(images, size=(small, small), mode="bicubic", antialias=True,
                          align_corners=False).clamp(0, 1)
    thumb = (thumb * 255).round() / 255  # stored as 8-bit pixels
    back = F.interpolate(thumb, size=(resolution, resolution), mode="bicubic",
                         align_corners=False).clamp(0, 1)
    return {"thumbnail_side": small, "thumbnail_bits": small * small * 3 * 8,
            "psnr": round(float(psnr(back, images).mean()), 3), "images": len(images)}


def main(argv: list[str] | None = None) -> int:
    p = common.recipe_parser(__doc__, HERE, MODELS, "a folder of photographs (any size; "
                             "optional metadata.jsonl with file_name and text)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/valid/test split")
    run = common.RecipeRun(p, argv, MODELS, stages=4)
    args, out = run.args, run.out
    data = out / "data"
    with run.stage("splitting the photos into train / valid / test"):
        run.results["splits"] = split_photos(Path(args.data), data, args.seed, args.max_samples)
        print(json.dumps(run.results["splits"]))
    tok_dir = run.tokenizer("image", data, "the test photos")
    cfg = json.loads((tok_dir / "config.json").read_text())
    with run.stage("the reference: bicubic thumbnails at the code grid's size"):
        ref = thumbnail_reference(data, cfg["resolution"], cfg["downsample_factor"])
        grid = cfg["resolution"] // cfg["downsample_factor"]
        levels = cfg.get("fsq_levels") if cfg.get("quantizer") == "fsq" else None
        codes = math.prod(levels) if levels else cfg["codebook_size"]
        ref["tokenizer_bits"] = round(grid * grid * math.log2(codes), 1)
        run.results["thumbnail_reference"] = ref
        print(json.dumps(ref))
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
