"""Training losses averaged over windows of steps: the loss curves of a run's report.

`train_history.json` holds a row per evaluation (a few per run), too coarse for a curve; this
keeps the mean of every logged training term over each window of `every` steps (over the steps
that logged it: a term some steps have and others not, such as CTC on whole-utterance steps, is
not diluted by the others) and writes them
to `OUT/train_curve.json`. The points travel in the checkpoint state, so a resumed run continues
its curve (the window in progress when the run was killed is dropped).
"""

from __future__ import annotations

import json
from pathlib import Path

CURVE_FILE = "train_curve.json"


class LossCurve:
    def __init__(self, every: int = 25, points: list[dict] | None = None):
        if every < 1:
            raise ValueError(f"log_every must be ≥ 1, got {every}")
        self.every, self.points = every, list(points or [])
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def add(self, done: int, logs: dict[str, float]) -> None:
        """Record the training terms of step `done` (1-based); close a window every `every`."""
        for k, v in logs.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v)
            self._counts[k] = self._counts.get(k, 0) + 1
        if done % self.every == 0:
            self.points.append({"step": done, **{k: round(v / self._counts[k], 5)
                                                 for k, v in self._sums.items()}})
            self._sums, self._counts = {}, {}

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CURVE_FILE
        path.write_text(json.dumps(self.points))
        return path


def load_curve(folder: str | Path) -> list[dict]:
    path = Path(folder) / CURVE_FILE
    return json.loads(path.read_text()) if path.exists() else []
