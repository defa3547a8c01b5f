"""LossCurve: the windowed means of training terms behind the reports' loss curves."""

import pytest

from speechtok.training.loss_curve import LossCurve, load_curve


def test_windows_average_their_steps_and_resume_continues(tmp_path):
    curve = LossCurve(every=2)
    for done, loss in enumerate([4.0, 2.0, 1.0, 3.0, 9.0], start=1):
        curve.add(done, {"train/loss": loss})
    assert curve.points == [{"step": 2, "train/loss": 3.0}, {"step": 4, "train/loss": 2.0}]
    curve.save(tmp_path)
    resumed = LossCurve(2, load_curve(tmp_path))  # as from a checkpoint's state
    resumed.add(5, {"train/loss": 1.0})
    resumed.add(6, {"train/loss": 2.0})
    assert [p["step"] for p in resumed.points] == [2, 4, 6]
    assert resumed.points[-1]["train/loss"] == 1.5
    assert load_curve(tmp_path / "nowhere") == []
    with pytest.raises(ValueError, match="log_every"):
        LossCurve(0)


def test_a_term_logged_on_some_steps_is_averaged_over_those_steps():
    curve = LossCurve(every=4)
    for step in range(1, 5):  # "ctc" only on steps 1 and 3, as on whole-utterance steps
        curve.add(step, {"loss": float(step), **({"ctc": 2.0 * step} if step % 2 else {})})
    assert curve.points == [{"step": 4, "loss": 2.5, "ctc": 4.0}]
