"""Training batches through a `torch.utils.data.DataLoader`, the same with any number of workers.

The batch of step s is a pure function of s (the data sources draw it from a generator seeded
by the seed, the step and the process), so the loader's item s *is* step s's batch: worker
processes decode and crop ahead of the training step, and the batches, their order and a resumed
run's batches stay bit-identical whether there are 0 or N workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


class StepBatches(Dataset):
    """Item s = (s, `make_batch(s)`); `make_batch` must be picklable for worker processes (a
    bound method of a data source, or a functools.partial of one)."""

    def __init__(self, make_batch: Callable[[int], Any], steps: int):
        self.make_batch, self.steps = make_batch, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[int, Any]:
        return step, self.make_batch(step)


def step_batches(make_batch: Callable[[int], Any], start: int, steps: int, num_workers: int = 0,
                 seed: int = 0) -> Iterator[tuple[int, Any]]:
    """(step, batch) for steps `start` … `steps - 1`, built by `num_workers` processes (0: in
    this one). The loader's own generator is seeded here, so creating it draws nothing from
    the global RNG that model initialisation and codebook restarts use."""
    if num_workers < 0:
        raise ValueError(f"num_workers must be ≥ 0, got {num_workers}")
    loader = DataLoader(StepBatches(make_batch, steps), batch_size=None,
                        sampler=range(start, steps), num_workers=num_workers,
                        generator=torch.Generator().manual_seed(seed),
                        prefetch_factor=2 if num_workers else None,
                        persistent_workers=False)
    return iter(loader)


def next_batch(batches: Iterator[tuple[int, Any]], step: int) -> Any:
    """The next batch, checked to be step `step`'s."""
    got, batch = next(batches)
    if got != step:
        raise RuntimeError(f"the loader gave the batch of step {got} at step {step}")
    return batch
