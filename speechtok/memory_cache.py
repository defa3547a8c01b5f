"""A least-recently-used cache of decoded tensors with a size limit in megabytes.

The tokenizer trainers decode the same clips and images many times over an epoch; keeping the
decoded tensors saves that work, but a corpus of any size must not grow memory without bound
(LibriSpeech's 960 hours are about 220 GB of float32). This cache keeps the most recently used
tensors up to `max_mb` and drops the oldest beyond it. Each DataLoader worker process holds its
own copy, so a trainer gives each process its share of the budget (`per_process_mb`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

import torch


class BoundedCache:
    """{key: tensor}, together at most `max_mb` megabytes (0 = keep nothing)."""

    def __init__(self, max_mb: float):
        if max_mb < 0:
            raise ValueError(f"a cache size must be ≥ 0 MB, got {max_mb}")
        self.max_bytes = int(max_mb * 2**20)
        self.bytes = 0
        self._items: OrderedDict[Hashable, torch.Tensor] = OrderedDict()

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
