"""What the speech and image data sources share: the item they hold (a file or a dataset row's
encoded bytes), the rows of a `datasets` dataset with their media left encoded, what a saved
`datasets` folder looks like, and a deterministic held-out share when no valid/ split exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class MediaItem:
    """One training item: a file, or the encoded bytes of a dataset row, and its metadata."""

    name: str
    path: Path | None = None  # a file, or None when `data` holds encoded bytes
    data: bytes | None = None
    meta: dict = field(default_factory=dict)


def hold_out(items: list, fraction: float, seed: int, source: str) -> tuple[list, list]:
    """(rest, held out): a deterministic random `fraction` (at least one) of `items`."""
    if len(items) < 2:
        raise ValueError(f"{source}: need at least 2 items to hold one out for validation, "
                         f"got {len(items)}")
    order = np.random.default_rng(seed).permutation(len(items))
    n_valid = max(1, int(round(fraction * len(items))))
    return [items[i] for i in order[n_valid:]], [items[i] for i in order[:n_valid]]


def is_saved_dataset(path: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()


def encoded_rows(dataset, column: str, feature) -> list[tuple[str, bytes | None, Path | None,
                                                               dict]]:
    """The rows of a `datasets` dataset with their media left encoded, as (name, bytes, path,
    other columns): `column` is cast to `feature` (`Audio(decode=False)` or
    `Image(decode=False)`), so soundfile and Pillow decode the bytes later, in our own code,
    instead of datasets' torchcodec (which needs FFmpeg's shared libraries)."""
    rows = []
    for i, row in enumerate(dataset.cast_column(column, feature)):
        media = row[column]
        meta = {k: v for k, v in row.items() if k != column}
        data = media.get("bytes") or None
        rows.append((f"row{i}", data, None if data else Path(media["path"]), meta))
    return rows


def split_by_sentence(rows: list[dict], shares: dict[str, float], seed: int,
                      text_key: str = "text") -> dict[str, list[dict]]:
    """Rows of transcribed recordings split so that every recording of one sentence (the
    normalised text: case, punctuation and digits do not make a new sentence) lands in the
    same split, and no held-out sentence is heard in training. `shares` ({split: fraction of
    the rows}) are filled in their order from a seeded shuffle of the sentences; the rest is
    "train". Every split in `shares` gets at least one sentence."""
    from speechtok.metrics.wer import normalize

    by_sentence: dict[str, list[dict]] = {}
    for row in rows:
        by_sentence.setdefault(" ".join(normalize(row[text_key])), []).append(row)
    if len(by_sentence) < len(shares) + 1:
        raise ValueError(f"{len(by_sentence)} distinct sentences cannot fill the splits "
                         f"{['train', *shares]}")
    sentences = sorted(by_sentence)
    np.random.default_rng(seed).shuffle(sentences)
    quota = {k: max(1, round(v * len(rows))) for k, v in shares.items()}
    out: dict[str, list[dict]] = {k: [] for k in ("train", *shares)}
    for i, sentence in enumerate(sentences):
        left = len(sentences) - i  # keep at least one sentence for train
        split = next((k for k in shares if len(out[k]) < quota[k] and left > 1), "train")
        out[split].extend(by_sentence[sentence])
    return out
