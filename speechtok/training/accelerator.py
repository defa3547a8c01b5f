"""The accelerate set-up every trainer shares: device, processes and mixed precision."""

from __future__ import annotations

import os

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


def make_accelerator(mixed_precision: str, **kwargs):
    """(Accelerator, precision): "auto" means bf16 on a CUDA device that supports it, else
    fp32 ("no"). `kwargs` go to Accelerator (e.g. log_with, project_dir)."""
    from accelerate import Accelerator

    check_precision(mixed_precision)
    mp = mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return Accelerator(mixed_precision=mp, cpu=cpu_processes(), **kwargs), mp


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
