#!/usr/bin/env python
"""COCO captions: caption → image, DALL-E style, with classifier-free guidance at sampling.

DALL-E (Ramesh et al. 2021) in small: a VQGAN turns each image into a grid of codes, and one
causal LM reads `<bos> caption <boi> codes <eoi> <eos>`, its loss weighted text 1/8, image 7/8.
Every COCO image has five captions: each training sample uses one of them (the others ride
along as alt_texts). 10 % of the samples have their caption dropped, so the same LM also learns
the unconditional distribution, and sampling mixes the two: logits = uncond + s·(cond −
uncond), classifier-free guidance (Ho & Salimans 2022; for token LMs as in Make-A-Scene and
Parti).

Data:     COCO 2017 (Lin et al. 2014; captions: Chen et al. 2015) from https://cocodataset.org:
          http://images.cocodataset.org/zips/train2017.zip (18 GB, 118k images),
          http://images.cocodataset.org/zips/val2017.zip (5k images) and
          http://images.cocodataset.org/annotations/annotations_trainval2017.zip, unpacked
          into one folder: annotations/captions_{train,val}2017.json, train2017/*.jpg,
          val2017/*.jpg. Or a `datasets` copy saved with save_to_disk (an image column and a
          caption column holding a string or a list of strings: --caption-column), or such a
          dataset's Hub name (needs internet).
Stages:   1. COCO → an imagefolder at the tokenizer's resolution (shorter side resized, centre
             crop), text = the first caption, alt_texts = the others. train = train2017 less
             --valid-images held out; test = val2017                      (OUT/data)
          2. train the image tokenizer (image_tokenizer.yaml)          → OUT/image_tokenizer
          3. evaluate it on val2017: PSNR, SSIM, codebook use; OUT/image_reconstructions.png
          4. pre-tokenise every split (lm tokenize)                     → OUT/codes/image
          5. train the caption → image LM (lm.yaml)                     → OUT/bundle
          6. draw --num-captions val2017 captions at each --guidance-scales
             (OUT/generation/guidance_<s>.png, a row per caption, captions in captions.txt);
             --guidance becomes the bundle's default (`lm generate image` uses it)
Command:  python recipes/coco_captions/run.py --data /data/coco --out runs/coco_captions
Result:   not measured here: there is no COCO on this machine (no internet). Look for: PSNR of
          the tokenizer on val2017 (the reconstruction grid shows what detail survives the
          16×16 grid), the LM's validation loss per image token falling, and, in the
          generation grids, images whose layout and colours follow the captions more closely as
          the guidance scale grows from 1 (none), at some cost in variety.
Time:     not run here; the configs are sized for GPUs, not for this machine's 2 CPU cores.
          The two-step smoke run in tests/test_recipes.py (a fake COCO folder, tiny models)
          takes about 14 s here.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from recipes import common, layouts

HERE = Path(__file__).resolve().parent

MODELS = ("image", "lm")
DATA_HELP = ("the COCO folder (annotations/captions_train2017.json, train2017/, and for the "
             "test split captions_val2017.json + val2017/), a save_to_disk copy, or a Hub name")
CAPTION_COLUMNS = ("captions", "caption", "sentences", "text")


def coco_examples(root: Path, split: str, max_samples: int | None) -> list[layouts.Example]:
    """The images of `split` (e.g. train2017) that have captions, in image-id order."""
    ann = root / "annotations" / f"captions_{split}.json"
    if not ann.exists():
        raise FileNotFoundError(f"{ann} not found: unpack annotations_trainval2017.zip into "
                                f"{root}")
    coco = json.loads(ann.read_text())
    captions: dict[int, list[str]] = defaultdict(list)
    for a in coco["annotations"]:
        captions[a["image_id"]].append(" ".join(a["caption"].split()))  # one-line captions
    out = []
    for img in sorted(coco["images"], key=lambda i: i["id"]):
        if not captions[img["id"]]:
            continue
        path = root / split / img["file_name"]
        if not path.exists():
            raise FileNotFoundError(f"{path} (listed in {ann}) is missing")
        first, *others = captions[img["id"]]
        out.append(layouts.Example(Path(img["file_name"]).stem, path, first,
                                   {"alt_texts": others, "coco_id": img["id"]}))
        if max_samples is not None and len(out) == max_samples:
            break
    return out


def _dataset_example(column: str):
    def build(i: int, row: dict, media) -> layouts.Example:
        caps = row[column]
        caps = [caps] if isinstance(caps, str) else [str(c) for c in caps]
        if not caps:
            raise ValueError(f"row {i}: no caption in column {column!r}")
        return layouts.Example(f"row{i:06d}", media, caps[0], {"alt_texts": caps[1:]})
    return build


def coco_splits(args) -> dict[str, list[layouts.Example]]:
    from speechtok.splits import hold_out

    n = args.max_samples
    source = layouts.open_source(args.data)
    if source is None:
        root = Path(args.data).expanduser()
        n_valid = args.valid_images if n is None else min(args.valid_images, n)
        # read valid's share beyond --max-samples, so a quick run still has n training images
        train = coco_examples(root, "train2017", None if n is None else n + n_valid)
        n_valid = min(n_valid, len(train) - 1)  # hold_out says so if there are < 2
        train, valid = hold_out(train, n_valid / max(1, len(train)), 0, "COCO train2017")
        return {"train": layouts.take(train, n), "valid": valid,
                "test": coco_examples(root, "val2017", n)}
    parts = layouts.dataset_splits(source, ("train",), ("validation", "valid"), ("test",))
    column = args.caption_column or next(
        (c for c in CAPTION_COLUMNS if c in parts["train"].column_names), None)
    if column is None:
        raise ValueError(f"no caption column among {parts['train'].column_names}: give "
                         "--caption-column")
    image_column = args.image_column
    return {s: layouts.dataset_examples(ds, image_column, "image", n, _dataset_example(column))
            for s, ds in parts.items()}


def draw(bundle: Path, data: Path, out: Path, n: int, scales: list[float], default: float,
         seed: int = 0) -> dict:
    """A grid per guidance scale for the first `n` test captions (same seed: the same draws
    but for the guidance), then `default` becomes the bundle's guidance scale."""
    from lm.pipelines import TextToImage, save_generation_defaults
    from speechtok.image.io import image_grid

    rows = [json.loads(line) for line in (data / "test" / "metadata.jsonl").read_text()
            .splitlines()][:n]
    captions = [r["text"] for r in rows]
    pipe = TextToImage.from_pretrained(bundle)
    out.mkdir(parents=True, exist_ok=True)
    (out / "captions.txt").write_text("".join(c + "\n" for c in captions))
    grids = {}
    for scale in scales:
        images = pipe(captions, num_images=4, guidance_scale=scale, temperature=1.0,
                      seed=seed).images
        grids[str(scale)] = f"guidance_{scale:g}.png"
        image_grid(list(images.split(4))).save(out / grids[str(scale)])
    save_generation_defaults(bundle, "image", {"guidance_scale": default, "temperature": 1.0})
    return {"captions": captions, "grids": grids, "default_guidance": default}


def main(argv: list[str] | None = None) -> int:
    p = common.recipe_parser(__doc__, HERE, MODELS, DATA_HELP)
    p.add_argument("--valid-images", type=int, default=1000,
                   help="train2017 images held out for validation (default 1000)")
    p.add_argument("--caption-column", default=None, help="datasets source: the caption column "
                   f"(default: the first of {', '.join(CAPTION_COLUMNS)})")
    p.add_argument("--image-column", default="image", help="datasets source: the image column")
    p.add_argument("--num-captions", type=int, default=8, help="test captions to draw")
    p.add_argument("--guidance-scales", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0],
                   help="a grid per scale (1 = no guidance)")
    p.add_argument("--guidance", type=float, default=3.0,
                   help="the bundle's default scale (look at the grids and change it with "
                   "lm.pipelines.save_generation_defaults)")
    run = common.RecipeRun(p, argv, MODELS, stages=6)
    args, out = run.args, run.out
    if args.valid_images < 1:
        p.error("--valid-images must be ≥ 1")
    image_cfg = common.model_configs("image", args.image_config, run.overrides["image"])[0]
    common.model_configs("lm", args.lm_config, run.overrides["lm"])

    with run.stage("COCO → imagefolder"):
        data = out / "data"
        run.results["data"] = layouts.write_image_folder(
            data, lambda: coco_splits(args), image_cfg.resolution,
            {"source": str(args.data), "valid_images": args.valid_images,
             "max_samples": args.max_samples})
    tok_dir = run.tokenizer("image", data, "val2017")
    run.lm("image", data, tok_dir, "caption → image LM")
    with run.stage("drawing test captions at several guidance scales"):
        run.results["generation"] = common.cached_json(
            out / "generation" / "generation.json", lambda: draw(
                out / "bundle", data, out / "generation", args.num_captions,
                args.guidance_scales, args.guidance))
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
