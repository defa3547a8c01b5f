"""The fields every trainer shares (schedule of steps, optimiser, evaluation, saving, stopping),
read by the one training loop (speechtok.training.loop). Each trainer's config inherits them and
changes the defaults that differ (speechtok.fields.override)."""

from __future__ import annotations

from dataclasses import dataclass

from ..fields import option
from .accelerator import check_precision
from .schedule import SCHEDULES


@dataclass
class TrainLoopConfig:
    """The fields of the shared training loop: schedule, optimiser, evaluation, saving."""

    steps: int = option(1000, "optimiser steps in all")
    lr: float = option(1e-3, "peak learning rate (after warm-up; then the schedule's decay)")
    lr_schedule: str = option("cosine", "cosine (decay from the peak over the whole run) or wsd "
                              "(warmup-stable-decay: the peak held, then a linear decay over "
                              "the last decay_fraction of the steps)")
    decay_fraction: float = option(0.2, "wsd: share of the steps in the final decay")
    warmup_steps: int = option(100, "steps of linear learning-rate warm-up")
    min_lr_ratio: float = option(0.05, "the learning rate decays to lr × this at the last step")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(1.0, "clip the gradient norm to this (0 = no clipping)")
    eval_every: int = option(500, "evaluate on held-out data every N steps (and at the end)")
    log_every: int = option(25, "average the training terms over windows of N steps into "
                            "train_curve.json")
    save_every: int = option(250, "write the checkpoint OUT/checkpoints/last every N steps")
    seed: int = option(0, "seed of initialisation, data order and augmentation")
    num_workers: int = option(-1, "DataLoader worker processes that decode and crop batches "
                              "ahead of the step (0 = in the training process; -1 = 2 when "
                              "the machine has 4 or more cores, else 0); the batches are the "
                              "same with any number")
    mixed_precision: str = option("auto", "auto (bf16 on CUDA, fp32 on CPU), no, bf16 or fp16")
    compile: bool = option(False, "torch.compile the model's training forward (inductor; the "
                           "first steps pay the compilation)")
    max_minutes: float = option(0.0, "checkpoint and stop after this wall time, minutes (0 = no "
                                "limit)")
    stop_after_steps: int = option(0, "checkpoint and stop at this step (0 = run to steps), to "
                                   "split a run across job time limits; --resume continues it "
                                   "as if uninterrupted")

    def __post_init__(self):
        for name in ("steps", "eval_every", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "stop_after_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.num_workers < -1:
            raise ValueError(f"num_workers must be ≥ 0, or -1 for automatic, got "
                             f"{self.num_workers}")
        check_precision(self.mixed_precision)
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got "
                             f"{self.lr_schedule!r}")
        if not 0 < self.decay_fraction <= 1:
            raise ValueError(f"decay_fraction must lie in (0, 1], got {self.decay_fraction}")
