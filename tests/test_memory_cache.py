"""The decoded-data cache stays within its size limit, drops the least recently used tensors
first, and changes no batch."""

from __future__ import annotations

import subprocess
import sys
from functools import partial

import pytest
import torch

from speechtok.memory_cache import BoundedCache, per_process_mb
from speechtok.speech.data import open_splits


def test_cache_keeps_within_its_limit_and_drops_the_least_recently_used():
    cache = BoundedCache(max_mb=3 / 2**20 * 400)  # room for 3 tensors of 100 float32
    made = []

    def make(k):
        made.append(k)
        return torch.full((100,), float(k))

    for k in (0, 1, 2):
        cache.get(k, partial(make, k))
    assert cache.bytes == 1200 and len(cache) == 3
    assert cache.get(0, partial(make, 0))[0] == 0 and made == [0, 1, 2]  # a hit: not remade
    cache.get(3, partial(make, 3))  # over the limit: 1 (least recently used) is dropped
    assert cache.bytes <= cache.max_bytes and len(cache) == 3
    cache.get(1, partial(make, 1))
    assert made == [0, 1, 2, 3, 1]
    cache.get(0, partial(make, 0))  # 0 was used more recently than 2, so it stayed
    assert made == [0, 1, 2, 3, 1]
    too_big = cache.get(9, lambda: torch.zeros(1000))  # larger than the whole cache: not kept
    assert too_big.shape == (1000,) and 9 not in cache and cache.bytes <= cache.max_bytes


def test_a_zero_cache_keeps_nothing_and_a_negative_one_is_an_error():
    cache = BoundedCache(0)
    cache.get("a", lambda: torch.zeros(4))
    assert len(cache) == 0 and cache.bytes == 0
    with pytest.raises(ValueError, match="≥ 0 MB"):
        BoundedCache(-1)
    assert per_process_mb(200, 0) == 200 and per_process_mb(200, 4) == 50


def test_audio_batches_do_not_depend_on_the_cache(audio_folder):
    batches = {}
    for mb in (0.0, 0.05, 100.0):  # none, a few clips (evicting), everything
        train, _ = open_splits(audio_folder, 16000, cache_mb=mb)
        batches[mb] = [train.batch(s, 4, 1600, seed=3) for s in range(6)]
        assert train.cache.bytes <= train.cache.max_bytes
    assert all(torch.equal(a, b) and torch.equal(a, c)
               for a, b, c in zip(batches[0.0], batches[0.05], batches[100.0], strict=True))


FRAGMENTING_LOOP = """
import psutil, torch
from speechtok import memory_cache
memory_cache.BoundedCache(1)  # a cache with room fixes glibc's mmap threshold for the process
torch.set_num_threads(1)
proc = psutil.Process(); start = proc.memory_info().rss
kept = []
for _ in range(300):  # what a loader does: decode a photo, keep a small crop of it
    big = torch.rand(3, 384, 512)
    kept.append((big[:, :32, :32] * 255).round().to(torch.uint8).clone())
    del big
print(memory_cache._heap_fixed, (proc.memory_info().rss - start) / 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_cache_keeps_decode_buffers_from_pinning_the_heap():
    # Without the fixed threshold this loop grew by 640-670 MB in some processes here (and by
    # 8-13 MB in others: whether the heap gets pinned depends on its layout), the image loader
    # of benchmarks/bench_memory.py by gigabytes. The 300 kept crops are 0.9 MB.
    run = subprocess.run([sys.executable, "-c", FRAGMENTING_LOOP], text=True,
                         capture_output=True, timeout=120, check=True)
    fixed, growth = run.stdout.split()[-2:]
    assert fixed == "True" and float(growth) < 64, run.stdout
