"""The learning-rate schedules: warm-up, cosine and warmup-stable-decay, checked by hand."""

from __future__ import annotations

import math

import pytest

from speechtok.training.options import TrainLoopConfig
from speechtok.training.schedule import lr_lambda, warmup_cosine, warmup_stable_decay


def test_cosine_by_hand():
    fn = warmup_cosine(110, 10, 0.1)
    assert fn(0) == pytest.approx(0.1) and fn(9) == pytest.approx(1.0)
    assert fn(60) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert fn(110) == pytest.approx(0.1)


def test_wsd_holds_the_peak_then_decays_linearly():
    fn = warmup_stable_decay(100, 10, 0.1, decay_fraction=0.2)
    assert fn(4) == pytest.approx(0.5)
    assert all(fn(s) == 1.0 for s in range(10, 81))  # stable until the last 20 steps
    assert fn(90) == pytest.approx(1 - 0.9 * 0.5)
    assert fn(100) == pytest.approx(0.1) and fn(500) == pytest.approx(0.1)
    # strictly decreasing through the decay
    assert all(fn(s + 1) < fn(s) for s in range(80, 100))


def test_config_picks_the_schedule_and_refuses_unknown_names():
    cfg = TrainLoopConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1, lr_schedule="wsd",
                          decay_fraction=0.5)
    assert lr_lambda(cfg)(49) == 1.0 and lr_lambda(cfg)(75) == pytest.approx(0.55)
    assert lr_lambda(TrainLoopConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1))(49) < 1.0
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainLoopConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="decay_fraction"):
        TrainLoopConfig(lr_schedule="wsd", decay_fraction=0.0)
