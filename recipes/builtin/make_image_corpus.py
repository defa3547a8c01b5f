#!/usr/bin/env python
"""Render the built-in captioned image corpus: letters and digits in the installed fonts.

Every installed font face (TrueType/OpenType, one file per family + style; symbol, dingbat and
math faces dropped) draws the 62 characters 0-9, A-Z, a-z, black on white. Each image's `text`
is the canonical caption "URW Gothic Demi, the uppercase letter G" / "Liberation Serif Bold,
the digit 7" (the character last, right before the image tokens: with this one template the
demo LM drew the requested character in 0.57 of test captions against 0.31 with the font name
last, issue 5) and its `alt_texts` --wordings other training wordings (templates, synonyms,
word order, with and without the face name, lower and upper case; captions.py), of which the
LM's caption task picks one per sample, so that it learns the request and not one template.
The evaluation does not use the test images' alt_texts: it words their captions per wording
family, some with templates no training image has (captions.family_captions).
One point size per face makes its tallest and widest glyph fit the image less a margin (default
4 px at 32 px: a 24-px box, the MNIST convention of a 20-px digit in a 28-px frame), and all
glyphs of a face share a baseline, so case and height survive ("o" is smaller than "O", "g"
descends) instead of every glyph being stretched to fill the frame.

Splits, by whole font family, so evaluation measures fonts the models never saw:
  train  every family not held out
  valid  the --valid-families (eval during training)
  test   the --test-families (the held-out figures; captions for generation)
Families missing on this machine are skipped with a note; with fewer fonts the corpus is
smaller but still split the same way (Makefile `system-deps` installs the font packages).

Layout (the `datasets` "imagefolder" layout): OUT/{train,valid,test}/*.png (RGB, --size px)
and OUT/{split}/metadata.jsonl with file_name, text, alt_texts, char, kind, family, style;
OUT/corpus.json with settings and counts. Built in a temporary sibling and renamed into place.

Usage: python recipes/builtin/make_image_corpus.py --out runs/demo/data/images [--size 32]
"""

from __future__ import annotations

import argparse
import json
import shutil
import string
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from recipes.builtin.captions import canonical_caption, face_name, kind_of, training_wordings

CHARS = string.digits + string.ascii_uppercase + string.ascii_lowercase
SPLITS = ("train", "valid", "test")
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")
# Faces whose "letters" are not Latin letters, or are too unlike them to caption honestly
# (keycaps, decorative initials, small capitals for lowercase, hairlines too thin at 32 px).
# Redesigns of held-out families are dropped too, so the test fonts stay unseen: TeX Gyre
# Adventor is URW Gothic's, Hack is derived from DejaVu Sans Mono.
EXCLUDE = ("Symbol", "Dingbat", "D050000L", "Math", "ExtraLight", "Thin", "Hairline", "Keyboard",
           "Initials", "Smallcaps", "TeX Gyre Adventor", "Hack")
VALID_FAMILIES = ("Carlito",)
TEST_FAMILIES = ("URW Gothic", "Caladea", "DejaVu Sans Mono")
WORDINGS = 8  # training wordings per image besides the canonical one (captions.py)


def find_faces(dirs=FONT_DIRS) -> list[tuple[str, str, Path]]:
    """(family, style, file) for every usable installed face, deduplicated, sorted."""
    faces: dict[tuple[str, str], Path] = {}
    for d in dirs:
        root = Path(d).expanduser()
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in (".ttf", ".otf"):
                continue
            try:
                family, style = ImageFont.truetype(str(path), 12).getname()
            except OSError:
                continue
            if any(x in f"{family} {style} {path.name}" for x in EXCLUDE):
                continue
            faces.setdefault((family, style), path)
    return [(f, s, p) for (f, s), p in sorted(faces.items())]


def fitted_font(path: Path, size: int, margin: int) -> tuple[ImageFont.FreeTypeFont, int, int]:
    """The largest point size at which every glyph's ink fits the image less `margin` on each
    side; returns the font and the vertical extent (top, bottom) of all glyphs' ink."""
    box = size - 2 * margin
    points = size
    while points > 4:
        font = ImageFont.truetype(str(path), points)
        boxes = [font.getbbox(ch, anchor="ls") for ch in CHARS]
        top, bottom = min(b[1] for b in boxes), max(b[3] for b in boxes)
        width = max(b[2] - b[0] for b in boxes)
        if bottom - top <= box and width <= box:
            return font, top, bottom
        points -= 1
    raise ValueError(f"{path}: cannot fit glyphs into {size}px")


def render(font: ImageFont.FreeTypeFont, ch: str, size: int, top: int, bottom: int) -> Image:
    """Black glyph on white, centred horizontally by its ink, on the face's common baseline."""
    img = Image.new("RGB", (size, size), "white")
    left, _, right, _ = font.getbbox(ch, anchor="ls")
    x = (size - (right - left)) / 2 - left
    y = (size - (bottom - top)) / 2 - top  # baseline so the face's ink block is centred
    ImageDraw.Draw(img).text((round(x), round(y)), ch, font=font, fill="black", anchor="ls")
    return img


def is_blank(img: Image.Image) -> bool:
    return img.convert("L").getextrema()[0] > 200


def split_of(family: str, valid: tuple[str, ...], test: tuple[str, ...]) -> str:
    return "test" if family in test else "valid" if family in valid else "train"


def is_complete(out: Path) -> bool:
    return (out / "corpus.json").exists()


def build_corpus(out: Path, size: int = 32, margin: int = 4, valid=VALID_FAMILIES,
                 test=TEST_FAMILIES, faces=None, max_faces: int | None = None,
                 wordings: int = WORDINGS) -> dict:
    if is_complete(out):
        print(f"{out} is complete; leaving it alone")
        return json.loads((out / "corpus.json").read_text())
    faces = find_faces() if faces is None else faces
    if max_faces:
        faces = faces[:max_faces]
    if not faces:
        raise SystemExit("no usable TrueType/OpenType fonts found; install fonts-dejavu-core "
                         "(and the others listed in the Makefile's FONT_PACKAGES)")
    families = {f for f, _, _ in faces}
    for name in (*valid, *test):
        if name not in families:
            print(f"note: held-out family {name!r} is not installed; skipped")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    skipped = []
    for family, style, path in faces:
        split = split_of(family, valid, test)
        (tmp / split).mkdir(parents=True, exist_ok=True)
        font, top, bottom = fitted_font(path, size, margin)
        name = face_name(family, style)
        slug = name.lower().replace(" ", "-")
        for ch in CHARS:
            img = render(font, ch, size, top, bottom)
            if is_blank(img):
                skipped.append(f"{name}:{ch}")
                continue
            kind = kind_of(ch)
            file_name = f"{slug}_{kind[0]}{ch}.png"
            img.save(tmp / split / file_name)
            # every split alike (one metadata schema for `datasets`); the evaluation words the
            # test captions per family itself (captions.family_captions)
            alt = training_wordings(ch, name, wordings, file_name)
            rows[split].append({"file_name": file_name, "text": canonical_caption(ch, name),
                                "alt_texts": alt, "char": ch, "kind": kind, "family": family,
                                "style": style})
    for split, items in rows.items():
        (tmp / split).mkdir(parents=True, exist_ok=True)
        with open(tmp / split / "metadata.jsonl", "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in items)
    summary = {
        "size": size, "margin": margin, "chars": CHARS, "wordings_per_image": 1 + wordings,
        "faces": {s: sorted({face_name(r["family"], r["style"]) for r in rows[s]})
                  for s in SPLITS},
        "images": {s: len(rows[s]) for s in SPLITS},
        "blank_skipped": skipped,
    }
    (tmp / "corpus.json").write_text(json.dumps(summary, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output directory (created)")
    p.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    p.add_argument("--margin", type=int, default=None,
                   help="blank pixels kept on each side (default: size / 8, 4 px at 32 px)")
    p.add_argument("--valid-families", nargs="*", default=list(VALID_FAMILIES),
                   help="font families held out for evaluation during training")
    p.add_argument("--test-families", nargs="*", default=list(TEST_FAMILIES),
                   help="font families held out for the final figures")
    p.add_argument("--max-faces", type=int, default=None, help="use only the first N faces")
    p.add_argument("--wordings", type=int, default=WORDINGS,
                   help="training captions per image besides the canonical one, each a "
                   "template, synonym and case drawn from captions.py (default %(default)s; "
                   "0 = the canonical wording only)")
    args = p.parse_args(argv)
    t0 = time.time()
    margin = args.size // 8 if args.margin is None else args.margin
    s = build_corpus(args.out, args.size, margin, tuple(args.valid_families),
                     tuple(args.test_families), max_faces=args.max_faces,
                     wordings=args.wordings)
    faces = {k: len(v) for k, v in s["faces"].items()}
    print(f"{args.out}: images {s['images']}, faces {faces}, {len(s['blank_skipped'])} blank "
          f"glyphs skipped, {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
