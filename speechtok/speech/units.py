"""GSLM unit deduplication (Lakhotia et al. 2021): runs of a repeated unit become one unit and its
run length, the form a unit LM is trained on; `undedup` restores the frame-rate stream."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dedup(units: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Collapse repeated consecutive units (GSLM, Lakhotia et al. 2021).

    `units` (batch, frames) → (list of deduplicated units, list of run lengths), one pair per
    row (rows dedup to different lengths). `undedup` inverts it.
    """
    units = torch.as_tensor(units)
    if units.dim() == 1:
        units = units[None]
    out_units, out_runs = [], []
    for row in units:
        values, counts = torch.unique_consecutive(row, return_counts=True)
        out_units.append(values)
        out_runs.append(counts)
    return out_units, out_runs


def undedup(units: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
    """Repeat each unit by its run length; shorter rows are right-padded with their last unit
    (`SpeechTokenizer.decode` then silences the padding)."""
    if (durations < 1).any():
        raise ValueError("durations must all be ≥ 1")
    rows = [u.repeat_interleave(d.to(u.device)) for u, d in zip(units, durations, strict=True)]
    longest = max(len(r) for r in rows)
    return torch.stack([F.pad(r, (0, longest - len(r)), value=int(r[-1])) for r in rows])
