"""Run lengths for generated speech units: a per-unit mean-duration model.

The unit LM works on deduplicated units (GSLM, Lakhotia et al. 2021), so a continuation has no
durations. GSLM's simplest decoder repeats each unit a fixed number of frames; we keep one mean
run length per unit, measured on the training codes (a 0-parameter duration model: units of
vowels run longer than those of stops), saved in the bundle as `unit_durations.json`.
Durations are rounded cumulatively, so the total length (the speaking rate) matches the sum of
the means instead of drifting by up to half a frame per unit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch

DURATIONS_FILE = "unit_durations.json"


def mean_run_lengths(utterances: Iterable, codebook_size: int) -> torch.Tensor:
    """(codebook_size,) mean run length of each unit over `utterances` (1-D unit sequences,
    not deduplicated); units never seen get the overall mean."""
    total = torch.zeros(codebook_size, dtype=torch.float64)
    count = torch.zeros(codebook_size, dtype=torch.float64)
    for units in utterances:
        units = torch.as_tensor(units).flatten().long()
        if not len(units):
            continue
        values, runs = torch.unique_consecutive(units, return_counts=True)
        total.index_add_(0, values, runs.double())
        count.index_add_(0, values, torch.ones_like(runs, dtype=torch.float64))
    overall = total.sum() / count.sum() if count.sum() else torch.tensor(1.0, dtype=torch.float64)
    return torch.where(count > 0, total / count.clamp(min=1), overall).float()


def expand_durations(units, means: torch.Tensor) -> torch.Tensor:
    """Integer run lengths (≥ 1) for deduplicated `units`, rounded cumulatively from `means`."""
    units = torch.as_tensor(units).flatten().long()
    ends = torch.round(torch.cumsum(means[units].double(), 0))
    starts = torch.cat([ends.new_zeros(1), ends[:-1]])
    return (ends - starts).clamp(min=1).long()


def save_durations(path: str | Path, means: torch.Tensor) -> None:
    Path(path).write_text(json.dumps({"mean_run_length": [round(float(m), 4) for m in means]}))


def load_durations(path: str | Path) -> torch.Tensor | None:
    path = Path(path)
    if not path.exists():
        return None
    return torch.tensor(json.loads(path.read_text())["mean_run_length"])
