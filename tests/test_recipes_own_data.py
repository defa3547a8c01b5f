"""The recipes for a user's own data (recipes/own_voice, recipes/photos), end to end for two
steps of each training on tiny models and data made on the spot, in the layouts users have."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import speechlike
from helpers import RECIPE_TINY_IMAGE, RECIPE_TINY_SPEECH, load_recipe, recipe_results
from PIL import Image

# ---- your own voice, your own photos ------------------------------------------------------------

TINY_VOCODER = ["--vocoder.dim", "16", "--vocoder.intermediate_dim", "32", "--vocoder.blocks",
                "2", "--vocoder.batch_size", "2", "--vocoder.segment_seconds", "0.4",
                "--vocoder.warmup_steps", "1", "--vocoder.eval_max_items", "1"]


def fake_recordings(root: Path, n: int = 14) -> Path:
    """n recordings (44.1 kHz stereo wav and 16 kHz flac, in a subfolder too) with transcripts
    that repeat sentences in other spellings ("Press 1." / "press one")."""
    root.mkdir(parents=True)
    (root / "takes").mkdir()
    rows = []
    for i in range(n):
        name = f"takes/p{i}.wav" if i % 2 else f"p{i}.flac"
        x = speechlike(0.8 + 0.05 * i, 44100 if i % 2 else 16000, seed=i)
        sf.write(root / name, np.stack([x, x], 1) if i % 2 else x, 44100 if i % 2 else 16000)
        text = ("Press 1." if i % 7 == 0 else "press one" if i % 7 == 1
                else f"sentence number {i // 2}")
        rows.append({"file_name": name, "text": text})
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_own_voice_recipe_splits_by_sentence_trains_both_decoders_and_fine_tunes(tmp_path):
    from speechtok.metrics.wer import normalize

    data, out = fake_recordings(tmp_path / "mine"), tmp_path / "run"
    args = ["--data", str(data), "--vocoder-steps", "2", "--eval-items", "2", "--no-asr",
            *RECIPE_TINY_SPEECH, *TINY_VOCODER]
    assert load_recipe("own_voice").main([*args, "--out", str(out)]) == 0
    results = recipe_results(out)
    assert sum(results["data"].values()) == 14
    sentences = {split: {" ".join(normalize(json.loads(line)["text"])) for line in
                         (out / "data" / split / "metadata.jsonl").read_text().splitlines()}
                 for split in ("train", "valid", "test")}
    assert not sentences["train"] & (sentences["valid"] | sentences["test"])
    assert (out / "speech_tokenizer" / "vocoder" / "model.safetensors").exists()
    for decoder in ("griffin_lim", "learned"):
        assert 0 <= results["resynthesis"][decoder]["stoi"] <= 1
        assert len(list((out / "resynthesis" / decoder).glob("*.wav"))) == 2
    assert set(results["unit_agreement"]) == {"unit_agreement_noise_10db",
                                              "unit_agreement_reverb",
                                              "unit_agreement_band_8khz"}
    # fine-tuning: the given tokenizer's architecture, its weights as the start
    tuned = tmp_path / "tuned"
    assert load_recipe("own_voice").main([*args, "--out", str(tuned), "--tokenizer",
                                      str(out / "speech_tokenizer"), "--speech.channels",
                                      "16"]) == 0
    first = json.loads((out / "speech_tokenizer" / "config.json").read_text())
    again = json.loads((tuned / "speech_tokenizer" / "config.json").read_text())
    assert first == again
    with pytest.raises(ValueError, match="architecture differs"):
        load_recipe("own_voice").main([*args, "--out", str(tmp_path / "bad"), "--tokenizer",
                                   str(out / "speech_tokenizer"), "--speech.channels", "24"])


def test_own_voice_needs_transcripts(tmp_path):
    data = fake_recordings(tmp_path / "mine")
    (data / "metadata.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="metadata.jsonl"):
        load_recipe("own_voice").main(["--data", str(data), "--out", str(tmp_path / "o"),
                                   *RECIPE_TINY_SPEECH])


def test_photos_recipe(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "photos"
    data.mkdir()
    rows = []
    for i in range(14):
        size = (40 + 7 * i, 30 + 5 * (i % 4))
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(
            data / f"{i}.jpg")
        rows.append({"file_name": f"{i}.jpg", **({"text": f"photo {i}"} if i % 3 else {})})
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    assert load_recipe("photos").main(["--data", str(data), "--out", str(out), *RECIPE_TINY_IMAGE,
                                   "--image.quantizer", "vq"]) == 0
    results = recipe_results(out)
    assert results["splits"] == {"test": 4, "valid": 2, "train": 8}
    assert 0 < results["image_tokenizer"]["psnr"] < 60
    ref = results["thumbnail_reference"]
    assert ref["thumbnail_side"] == 4 and ref["images"] == 4 and ref["psnr"] > 0
    assert (out / "image_reconstructions.png").exists()
    titled = [json.loads(line) for line in
              (out / "data" / "train" / "metadata.jsonl").read_text().splitlines()]
    assert any("text" in r for r in titled) and all("file_name" in r for r in titled)
