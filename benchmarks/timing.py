"""Timing shared by the benchmark scripts (imported from the scripts' own folder)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch


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


def matmul_peak(device: str = "cpu", dtype: torch.dtype = torch.float32, n: int = 2048,
                repeats: int = 10) -> float:
    """FLOP/s of a timed n × n matmul in `dtype` on `device` (median of `repeats`): the peak
    that model FLOP utilisation is measured against, taken in the same run as the model."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def mm():
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()

    return 2 * n**3 / median_seconds([mm], repeats, 3)[0]


def forward_flops(model: torch.nn.Module, *inputs, **kw) -> float:
    """FLOPs of one forward pass (matmuls, convolutions, attention), counted by
    torch.utils.flop_counter. A training step is about 3× this (backward ≈ 2× forward;
    Kaplan et al. 2020)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs, **kw)
    return float(counter.get_total_flops())


def lm_tokens_per_step(history_file) -> float:
    """Mean target tokens per training step of an `lm train` run (padding not counted), from
    its history: the LM packs `samples_per_step` samples into as many blocks as they fill."""
    hist = json.loads(Path(history_file).read_text())
    return statistics.mean(sum(v for k, v in h.items() if k.startswith("train/tokens/"))
                           for h in hist)


def lm_step_flops(model: torch.nn.Module, block_size: int, tokens_per_step: float) -> float:
    """Training FLOPs of a step of `tokens_per_step` tokens: 3 × the forward FLOPs per
    position of a full block (so attention is counted over the whole block)."""
    ids = torch.randint(0, model.config.vocab_size, (1, block_size), device=model.device)
    return 3 * forward_flops(model, input_ids=ids) / block_size * tokens_per_step
