"""Splits of a training corpus, shared by the speech and image data sources: what a saved
`datasets` folder looks like, and a deterministic held-out share when no valid/ split exists."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
