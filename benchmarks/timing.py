"""Timing shared by the benchmark scripts (imported from the scripts' own folder)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fns: list[Callable[[], object]], repeats: int, warmup: int) -> list[float]:
    """Median wall time of each function. Runs are interleaved (a, b, c, a, b, c, ...) so that
    load from other processes on a shared machine hits all contenders alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
    return [statistics.median(ts) for ts in times]
