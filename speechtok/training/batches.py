"""Training batches through a `torch.utils.data.DataLoader`, the same with any number of workers.

The batch of step s is a pure function of s (the data sources draw it from a generator seeded
by the seed, the step and the process), so the loader's item s *is* step s's batch: worker
processes decode and crop ahead of the training step, and the batches, their order and a resumed
run's batches stay bit-identical whether there are 0 or N workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
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


def auto_workers(num_workers: int) -> int:
    """`num_workers`, with -1 (automatic) resolved: 2 workers where the process may use 4 or
    more cores, else 0. On 2 cores a worker takes its core from the training step's own
    threads (and the demo trains two models side by side), so decoding in the step is as fast
    there (benchmarks/bench_data.py measures both)."""
    if num_workers != -1:
        return num_workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 if (cores or 1) >= 4 else 0


class StepBatchLoader:
    """The batches of steps `start` … `steps - 1` in order, built by `num_workers` processes
    (0: in this one; -1: `auto_workers`), with the time the training process spent waiting
    for them (`waited`, seconds): the share of a step that is data loading, which says whether
    to add workers."""

    def __init__(self, make_batch: Callable[[int], Any], start: int, steps: int,
                 num_workers: int = 0, seed: int = 0):
        num_workers = auto_workers(num_workers)
        if num_workers < 0:
            raise ValueError(f"num_workers must be ≥ 0 (or -1: automatic), got {num_workers}")
        self.num_workers = num_workers
        # The loader's own generator is seeded here, so creating it draws nothing from the
        # global RNG that model initialisation and codebook restarts use.
        loader = DataLoader(StepBatches(make_batch, steps), batch_size=None,
                            sampler=range(start, steps), num_workers=num_workers,
                            generator=torch.Generator().manual_seed(seed),
                            prefetch_factor=2 if num_workers else None,
                            persistent_workers=False)
        self._batches = iter(loader)
        self.waited = 0.0

    def take(self, step: int) -> Any:
        """The next batch, checked to be step `step`'s."""
        t0 = time.perf_counter()
        got, batch = next(self._batches)
        self.waited += time.perf_counter() - t0
        if got != step:
            raise RuntimeError(f"the loader gave the batch of step {got} at step {step}")
        return batch


def step_batches(make_batch: Callable[[int], Any], start: int, steps: int, num_workers: int = 0,
                 seed: int = 0) -> StepBatchLoader:
    """The loader of step `start` … `steps - 1`'s batches (see StepBatchLoader)."""
    return StepBatchLoader(make_batch, start, steps, num_workers, seed)


def next_batch(batches: StepBatchLoader, step: int) -> Any:
    """The next batch, checked to be step `step`'s."""
    return batches.take(step)
