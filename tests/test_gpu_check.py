"""benchmarks/gpu_check.sh on the CPU path (no GPU here): it trains all three models, encodes
the codes in between and prints the table the issue asks for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_the_cpu_path(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--steps", "2",
                          "--files", "12", "--num-workers", "1", "--work", str(tmp_path),
                          "--out", str(tmp_path / "table.json")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    table = json.loads((tmp_path / "table.json").read_text())
    assert table["device"] == "cpu" and table["peak_flops"] > 1e8
    assert [r["model"] for r in table["rows"]] == ["speech tokenizer", "image tokenizer", "LM"]
    for r in table["rows"]:
        assert r["steps"] == 2 and r["steps/s"] > 0
        assert 0 < float(r["MFU"].rstrip("%")) < 100
        assert 0 <= float(r["waiting for data"].rstrip("%")) <= 100
    assert "| speech tokenizer | 2 |" in run.stdout and "MFU against" in run.stdout
    assert (tmp_path / "runs" / "lm" / "model.safetensors").exists()
