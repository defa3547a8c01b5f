"""A least-recently-used cache of decoded tensors with a size limit in megabytes.

The tokenizer trainers decode the same clips and images many times over an epoch; keeping the
decoded tensors saves that work, but a corpus of any size must not grow memory without bound
(LibriSpeech's 960 hours are about 220 GB of float32). This cache keeps the most recently used
tensors up to `max_mb` and drops the oldest beyond it. Each DataLoader worker process holds its
own copy, so a trainer gives each process its share of the budget (`per_process_mb`).
"""

from __future__ import annotations

import ctypes
import sys
from collections import OrderedDict
from collections.abc import Callable, Hashable

import torch

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
_heap_fixed = False


def fixed_mmap_threshold(nbytes: int = 128 * 1024) -> bool:
    """Have glibc serve every allocation of `nbytes` or more with its own mmap, returned to the
    system when freed (glibc's initial rule), instead of its dynamic threshold.

    Why: the dynamic threshold rises to the size of the largest block freed so far. After a few
    decodes, the large short-lived buffers (a decoded photo, its float copy) then come from the
    heap. The small decoded tensors the cache keeps sit between them and stop the heap from
    shrinking. Measured: a loader on 20,000 JPEGs with a 66 MB cache grew to 6.4 GB in 300
    batches, and to 0.57 GB with this fix (docs/RESULTS.md). Once per process; a no-op off
    glibc."""
    global _heap_fixed
    if _heap_fixed or not sys.platform.startswith("linux"):
        return _heap_fixed
    try:
        _heap_fixed = bool(ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, nbytes))
    except (OSError, AttributeError):  # another C library (musl)
        _heap_fixed = False
    return _heap_fixed


class BoundedCache:
    """{key: tensor}, together at most `max_mb` megabytes (0 = keep nothing)."""

    def __init__(self, max_mb: float):
        if max_mb < 0:
            raise ValueError(f"a cache size must be ≥ 0 MB, got {max_mb}")
        self.max_bytes = int(max_mb * 2**20)
        self.bytes = 0
        self._items: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        if self.max_bytes:
            fixed_mmap_threshold()

    def __setstate__(self, state: dict) -> None:  # a loader worker started by spawn
        self.__dict__.update(state)
        if self.max_bytes:
            fixed_mmap_threshold()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The cached tensor of `key`, or `make()` (stored when it fits)."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = make()
        size = value.element_size() * value.nelement()
        if size <= self.max_bytes:
            while self.bytes + size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.bytes -= dropped.element_size() * dropped.nelement()
            self._items[key] = value
            self.bytes += size
        return value


def per_process_mb(cache_mb: float, num_workers: int) -> float:
    """Each process's share of a cache budget: the N workers of a DataLoader each keep a cache
    (the training process's stays nearly empty), so the total stays about `cache_mb`."""
    return cache_mb / max(1, num_workers)
