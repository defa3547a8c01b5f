"""The accelerate set-up every trainer shares: device, processes and mixed precision."""

from __future__ import annotations

import atexit
import os
from pathlib import Path

import torch

PRECISIONS = ("auto", "no", "bf16", "fp16")


def cpu_processes() -> bool:
    """True when launched as several processes on a machine without CUDA. accelerate then
    needs `cpu=True` to join them (gloo); otherwise each process runs alone with world size 1.
    (`accelerate launch --cpu --num_processes N` starts one process unless mpirun is set up;
    `accelerate launch --multi_gpu --num_processes N` or torchrun start N.)"""
    return not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def check_precision(mixed_precision: str) -> None:
    if mixed_precision not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {'/'.join(PRECISIONS)}, got "
                         f"{mixed_precision!r}")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX-BF16, from
    /proc/cpuinfo): there bf16 autocast pays (1.34× for the demo's speech tokenizer, docs/
    RESULTS.md); elsewhere PyTorch emulates it and it is slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def make_accelerator(mixed_precision: str, **kwargs):
    """(Accelerator, precision): "auto" means bf16 on a CUDA device that supports it, else
    fp32 ("no"). `kwargs` go to Accelerator (e.g. log_with, project_dir)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    check_precision(mixed_precision)
    mp = mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    state = AcceleratorState._shared_state
    alone = int(os.environ.get("WORLD_SIZE", "1")) == 1
    if state and state.get("_mixed_precision") != mp and alone:
        # accelerate keeps one precision per Python process; a second trainer started in the
        # same process (a notebook, a recipe) may ask for another. With one process nothing
        # else shares that state, so it is reset (the process group, if any, is kept).
        AcceleratorState._reset_state(reset_partial_state=False)
    acc = Accelerator(mixed_precision=mp, cpu=cpu_processes(), **kwargs)
    atexit.unregister(release_process_group)  # one registration however many trainers start
    atexit.register(release_process_group)
    return acc, mp


def release_process_group() -> None:
    """Take the process group down before the interpreter finalises. A process that exits
    with it still up lets gloo's worker threads be destroyed while joinable, and the process
    dies with SIGABRT ("terminate called without an active exception", pytorch#190489) after
    its work is done, which fails the whole launch. A no-op where a trainer's end_training has
    already done it."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def start_run(mixed_precision: str, seed: int):
    """(Accelerator, precision) for a tokenizer trainer, with the seed set and denormal floats
    flushed to zero: silence in recordings and the blank backgrounds of glyphs drive
    activations into denormals, which slow CPU convolutions several-fold; flushing them
    changes nothing measurable in the results."""
    from accelerate.utils import set_seed

    acc, mp = make_accelerator(mixed_precision)
    torch.set_flush_denormal(True)
    set_seed(seed)
    return acc, mp


def maybe_compile(model, enabled: bool):
    """`torch.compile(model)` when `enabled`, else `model`. The compiled wrapper shares the
    parameters and forwards attribute access (`.config`), so the loss code takes either; saving
    and evaluation keep using the plain model. Data-dependent steps of the quantizers (k-means
    initialisation, dead-code restarts) run as graph breaks, outside the compiled graphs."""
    if not enabled:
        return model
    # VQGAN's adaptive GAN weight takes a gradient through the graph before the backward pass
    # (autograd.grad with retain_graph), which compiled graphs that donate their saved buffers
    # to the backward forbid; keeping the buffers costs some memory, not time.
    import torch._functorch.config

    torch._functorch.config.donated_buffer = False
    return torch.compile(model)
