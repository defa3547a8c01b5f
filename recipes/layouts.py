"""Getting a dataset into the folder layouts our trainers already read, for every recipe.

    audio folder  OUT/{train,valid,test}/<name>.flac + metadata.jsonl rows {"file", "text", ...}
    imagefolder   OUT/{train,valid,test}/<name>.png + metadata.jsonl rows {"file_name", "text",
                  "alt_texts", ...}   (the `datasets` "imagefolder" layout)

A recipe's reader turns its dataset into `Example`s per split; `write_audio_folder` /
`write_image_folder` decode them, resample / downmix / resize through the library
(speechtok.speech.io, speechtok.image.io: the same rule the tokenizers apply at encode time) and
write them. Converting once, up front, means the trainers, `lm tokenize` and evaluation all
read one small, uniform corpus instead of each decoding the original format. The folder is
built in a temporary sibling and renamed into place, so OUT either is complete or absent, and
a complete one is left alone (stage skipping).

`--data` is a local folder in the dataset's own layout, a `datasets` dataset saved with
`save_to_disk`, or a Hugging Face Hub dataset name (downloads: only where there is internet).
The LibriSpeech reader is here because two recipes (librispeech, librispeech_text) share it.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from speechtok.image.data import ImageItem
from speechtok.image.io import prepare_images, to_pil
from speechtok.speech.io import decode_audio as decode_audio_bytes
from speechtok.speech.io import load_audio, save_audio
from speechtok.splits import hold_out, is_saved_dataset

SPLITS = ("train", "valid", "test")
DONE_FILE = "prepared.json"


@dataclass
class Example:
    """One item of a dataset. `media`: a file path or encoded bytes (audio or image), or a
    PIL image."""
    name: str  # unique within its split; becomes the file name
    media: object
    text: str = ""
    meta: dict = field(default_factory=dict)


def take(items: Iterable, n: int | None) -> list:
    """The first `n` items (all with None): `--max-samples` for a quick run."""
    return list(items if n is None else itertools.islice(items, n))


# ---- data sources ------------------------------------------------------------------------------

def open_source(data: str, hub_config: str | None = None):
    """None when `data` is a local folder (the dataset's own layout: the recipe reads it);
    otherwise the `datasets` Dataset / DatasetDict saved there, or loaded by Hub name."""
    path = Path(data).expanduser()
    if path.exists():
        if is_saved_dataset(path):
            from datasets import load_from_disk

            return load_from_disk(str(path))
        if not path.is_dir():
            raise ValueError(f"--data {data}: expected a folder, got a file")
        return None
    from datasets import load_dataset

    try:
        return load_dataset(data, hub_config)
    except Exception as err:  # offline, or no such dataset: say both readings failed
        raise FileNotFoundError(f"--data {data}: no such local folder, and loading it as a "
                                f"Hugging Face dataset name failed ({err})") from err


def pick_split(dataset, names: tuple[str, ...]):
    """The first split of a DatasetDict named in `names` (None if none is)."""
    return next((dataset[n] for n in names if n in dataset), None)


def dataset_splits(dataset, train: tuple[str, ...], valid: tuple[str, ...], test: tuple[str, ...],
                   seed: int = 0) -> dict:
    """{"train", "valid", "test"} datasets from a saved or Hub dataset: named splits where it
    has them; missing valid / test splits are held out of train (5 % each, seeded)."""
    if not hasattr(dataset, "keys"):  # a single Dataset
        dataset = {"train": dataset}
    out = {"train": pick_split(dataset, train), "valid": pick_split(dataset, valid),
           "test": pick_split(dataset, test)}
    if out["train"] is None:
        raise ValueError(f"the dataset has no training split (looked for {', '.join(train)}; "
                         f"it has {', '.join(dataset.keys())})")
    for split in ("test", "valid"):
        if out[split] is None:
            rest, held = hold_out(list(range(len(out["train"]))), 0.05, seed,
                                  f"the dataset's training split ({split} split held out)")
            out[split], out["train"] = out["train"].select(held), out["train"].select(rest)
    return out


def dataset_examples(ds, media_column: str, kind: str, max_samples: int | None,
                     to_example) -> list[Example]:
    """Rows of a `datasets` split as Examples, media left encoded: the column is cast to
    `Audio(decode=False)` / `Image(decode=False)`, since datasets 5.x decodes audio through
    torchcodec, which needs FFmpeg's shared libraries; soundfile / Pillow decode the bytes.
    `to_example(index, row, media)` builds each Example from the row."""
    from datasets import Audio, Image

    if media_column not in ds.column_names:
        raise ValueError(f"the dataset has no column {media_column!r} (columns: "
                         f"{', '.join(ds.column_names)})")
    if max_samples is not None:
        ds = ds.select(range(min(max_samples, len(ds))))
    ds = ds.cast_column(media_column, Audio(decode=False) if kind == "audio"
                        else Image(decode=False))
    out = []
    for i, row in enumerate(ds):
        cell = row[media_column]
        media = cell.get("bytes") or (Path(cell["path"]) if cell.get("path") else None)
        if media is None:
            raise ValueError(f"row {i} of the dataset has no {kind} (neither bytes nor a path)")
        out.append(to_example(i, row, media))
    return out


# ---- writing our layouts -----------------------------------------------------------------------

def _finished(out: Path, settings: dict) -> dict | None:
    done = out / DONE_FILE
    if not done.exists():
        return None
    summary = json.loads(done.read_text())
    if summary.get("settings") != settings:
        print(f"note: {out} was prepared with {summary.get('settings')}, not {settings}; "
              f"delete {out} to prepare it again")
    else:
        print(f"data prepared already: {out}")
    return summary


def _write(out: Path, read_splits, settings: dict, write_one) -> dict:
    """Write every split of `read_splits()` ({split: [Example]}, read only when `out` is not
    complete yet) through `write_one(folder, example) -> metadata row` into a temporary
    folder, then rename it to `out` (complete or absent)."""
    summary = _finished(out, settings)
    if summary is not None:
        return summary
    t0 = time.time()
    splits = read_splits()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {}
    try:
        for split in SPLITS:
            examples = splits.get(split) or []
            if not examples:
                raise ValueError(f"the {split} split is empty: nothing to write")
            names = [e.name for e in examples]
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate example names in the {split} split")
            folder = tmp / split
            folder.mkdir(parents=True)
            rows = [write_one(folder, e) for e in tqdm(examples, desc=f"prepare {split}")]
            (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            counts[split] = len(rows)
        summary = {"settings": settings, "items": counts, "seconds": round(time.time() - t0, 1)}
        (tmp / DONE_FILE).write_text(json.dumps(summary, indent=1))
        shutil.rmtree(out, ignore_errors=True)  # an incomplete earlier attempt
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"prepared {out}: {counts} in {summary['seconds']} s")
    return summary


def decode_audio(e: Example, sample_rate: int) -> torch.Tensor:
    """Mono `(samples,)` at `sample_rate` through speechtok.speech.io (errors name the item)."""
    if isinstance(e.media, (str, Path)):
        return load_audio(e.media, sample_rate)  # names the file when it cannot be read
    return decode_audio_bytes(e.media, sample_rate, e.name)


def write_audio_folder(out: Path, read_splits, sample_rate: int, settings: dict) -> dict:
    """`read_splits()` ({split: [Example]}) in the audio-folder layout at `sample_rate`, mono,
    as 16-bit FLAC (lossless, half the size of wav; soundfile reads it back)."""
    def write_one(folder: Path, e: Example) -> dict:
        wav = decode_audio(e, sample_rate)
        save_audio(folder / f"{e.name}.flac", wav, sample_rate)
        return {"file": f"{e.name}.flac", "text": e.text,
                "duration": round(len(wav) / sample_rate, 3), **e.meta}

    return _write(Path(out), read_splits, {**settings, "sample_rate": sample_rate}, write_one)


def open_image(e: Example):
    """A PIL image from a path, bytes or PIL image (errors name the item)."""
    if isinstance(e.media, (str, Path)):
        return ImageItem(e.name, path=Path(e.media)).open()  # names the file it cannot read
    if isinstance(e.media, bytes):
        return ImageItem(e.name, data=e.media).open()
    return e.media


def write_image_folder(out: Path, read_splits, resolution: int, settings: dict) -> dict:
    """`read_splits()` ({split: [Example]}) in the imagefolder layout: RGB PNGs at the
    tokenizer's resolution (shorter side resized, centre crop: speechtok.image.io.
    prepare_images), so training never decodes a large JPEG."""
    def write_one(folder: Path, e: Example) -> dict:
        to_pil(prepare_images(open_image(e), resolution)[0]).save(folder / f"{e.name}.png")
        return {"file_name": f"{e.name}.png", "text": e.text, **e.meta}

    return _write(Path(out), read_splits, {**settings, "resolution": resolution}, write_one)


# ---- LibriSpeech (librispeech and librispeech_text) ---------------------------------------------

LIBRISPEECH_HELP = ("the folder the openslr.org/12 tarballs extract to (LibriSpeech/, holding "
                    "train-clean-100/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac and "
                    "<speaker>-<chapter>.trans.txt), a `datasets` copy saved with save_to_disk "
                    "(an 'audio' and a 'text' column; splits such as train.clean.100, "
                    "validation.clean, test.clean), or the Hub name openslr/librispeech_asr "
                    "(with --hub-config clean; it downloads every split of that config)")

HUB_TRAIN = ("train", "train.clean.100", "train.100", "train.clean.360", "train.360",
             "train.other.500")
HUB_VALID = ("validation", "validation.clean", "valid", "dev", "dev.clean")
HUB_TEST = ("test", "test.clean")


def add_librispeech_args(p) -> None:
    p.add_argument("--train-subsets", nargs="+", default=["train-clean-100"],
                   help="LibriSpeech folders to train on (default train-clean-100; add "
                   "train-clean-360 train-other-500 for the 960 h)")
    p.add_argument("--valid-subset", default="dev-clean", help="held out for validation")
    p.add_argument("--test-subset", default="test-clean", help="held out for the figures")
    p.add_argument("--hub-config", default=None,
                   help="configuration of a Hub dataset name given as --data (e.g. clean)")


def librispeech_root(data: Path) -> Path:
    """The folder holding the subsets: `data` itself, or `data/LibriSpeech`."""
    return data / "LibriSpeech" if (data / "LibriSpeech").is_dir() else data


def librispeech_examples(root: Path, subsets: list[str], max_samples: int | None
                         ) -> list[Example]:
    """Utterances of LibriSpeech `subsets` under `root`, transcripts lower-cased (LibriSpeech
    writes them in capitals; the LM's text tokenizer is trained on ordinary case)."""
    def utterances():
        for subset in subsets:
            folder = root / subset
            if not folder.is_dir():
                have = sorted(p.name for p in root.iterdir() if p.is_dir())
                raise FileNotFoundError(f"LibriSpeech subset folder {folder} not found (the "
                                        f"folder holds: {', '.join(have) or 'nothing'})")
            transcripts = sorted(folder.glob("*/*/*.trans.txt"))
            if not transcripts:
                raise FileNotFoundError(f"{folder}: no <speaker>/<chapter>/*.trans.txt files: "
                                        "not a LibriSpeech subset")
            for trans in transcripts:
                for n, line in enumerate(trans.read_text().splitlines(), 1):
                    if not line.strip():
                        continue
                    uid, _, text = line.strip().partition(" ")
                    if uid.count("-") != 2 or not text:
                        raise ValueError(f"{trans}:{n}: expected '<speaker>-<chapter>-<utt> "
                                         f"TEXT', got {line[:60]!r}")
                    audio = trans.parent / f"{uid}.flac"
                    if not audio.exists():
                        raise FileNotFoundError(f"{audio} (listed in {trans}) is missing")
                    speaker, chapter, _ = uid.split("-")
                    yield Example(uid, audio, text.lower(),
                                  {"speaker": speaker, "chapter": chapter, "subset": subset})
    return take(utterances(), max_samples)


def write_librispeech_folder(args, data: Path, sample_rate: int) -> dict:
    """The LibriSpeech subsets `add_librispeech_args` chose as an audio folder at `data`
    (`write_audio_folder`; skipped when it was written with the same settings)."""
    return write_audio_folder(
        data, lambda: librispeech_splits(args), sample_rate,
        {"source": str(args.data), "train": args.train_subsets, "valid": args.valid_subset,
         "test": args.test_subset, "max_samples": args.max_samples})


def librispeech_splits(args) -> dict[str, list[Example]]:
    """Train / valid / test Examples from any LibriSpeech source (`LIBRISPEECH_HELP`)."""
    source = open_source(args.data, args.hub_config)
    n = args.max_samples
    if source is None:
        root = librispeech_root(Path(args.data).expanduser())
        return {"train": librispeech_examples(root, args.train_subsets, n),
                "valid": librispeech_examples(root, [args.valid_subset], n),
                "test": librispeech_examples(root, [args.test_subset], n)}

    def row_example(i: int, row: dict, media) -> Example:
        meta = {k: str(row[k]) for k in ("speaker_id", "chapter_id") if k in row}
        return Example(str(row.get("id") or f"row{i:06d}"), media,
                       str(row.get("text", "")).lower(), meta)

    parts = dataset_splits(source, HUB_TRAIN, HUB_VALID, HUB_TEST)
    return {s: dataset_examples(ds, "audio", "audio", n, row_example) for s, ds in parts.items()}
