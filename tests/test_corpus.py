"""The built-in corpus script, on a tiny count (needs Debian's flite)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from speechtok.metrics.wer import normalize

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "recipes/builtin" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_corpus_layout_and_held_out_splits(tmp_path):
    corpus = _load("make_speech_corpus")
    out = tmp_path / "corpus"
    assert corpus.main(["--out", str(out), "--num-utterances", "20"]) == 0
    rows = {s: [json.loads(x) for x in (out / s / "metadata.jsonl").read_text().splitlines()]
            for s in ("train", "valid", "test", "test_real")}
    assert all(rows.values())
    assert {r["voice"] for r in rows["test"]} == {"rms"}
    assert {r["voice"] for r in rows["test_real"]} == {"allison"}
    assert "rms" not in {r["voice"] for r in rows["train"] + rows["valid"]}
    # the shipped real voice: all 483 recordings, split by sentence (normalised text)
    real = [r for split_rows in rows.values() for r in split_rows if r["voice"] == "allison"]
    assert len(real) == 483
    assert 0.1 < len(rows["test_real"]) / 483 < 0.25
    train_texts = {" ".join(normalize(r["text"])) for r in rows["train"]}
    for held_out in ("valid", "test", "test_real"):
        assert not train_texts & {" ".join(normalize(r["text"])) for r in rows[held_out]}
    for split, split_rows in rows.items():
        for r in split_rows:
            assert (out / split / r["file"]).exists()
            if r["voice"] != "allison":
                assert r["phones"] and all(s <= e for _, s, e in r["phones"])
    # A second call on a finished corpus is a no-op.
    assert corpus.main(["--out", str(out), "--num-utterances", "20"]) == 0
