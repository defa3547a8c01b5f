"""bf16 autocast on the CPU and torch.compile: every trainer runs with them, and the losses stay
near the fp32, uncompiled ones (bf16 keeps 8 bits of mantissa, so not equal)."""

from __future__ import annotations

import json

import pytest
from conftest import TINY, write_captioned_images
from helpers import TINY_IMAGE, TINY_LM, lm_train_config

from lm.train import train_lm
from speechtok import ImageTokenizerConfig, SpeechTokenizerConfig
from speechtok.image.train import ImageTrainConfig, train_image
from speechtok.speech.train import SpeechTrainConfig, train_speech

LOOP = dict(steps=4, eval_every=2, save_every=4, warmup_steps=1, log_every=2)


def _losses(out) -> list[float]:
    return [h["train/loss"] for h in json.loads((out / "train_history.json").read_text())]


def _close(a, b, rel):
    return all(abs(x - y) <= rel * abs(x) for x, y in zip(a, b, strict=True))


def test_bf16_trains_the_tokenizers_on_the_cpu(audio_folder, tmp_path):
    for mp in ("no", "bf16"):
        train_speech(audio_folder, tmp_path / f"speech_{mp}", SpeechTokenizerConfig(**TINY),
                     SpeechTrainConfig(batch_size=2, segment_seconds=0.4, eval_max_items=2,
                                       mixed_precision=mp, **LOOP))
    write_captioned_images(tmp_path / "imgs", {"train": 10, "valid": 2})
    for mp in ("no", "bf16"):
        train_image(tmp_path / "imgs", tmp_path / f"image_{mp}", ImageTokenizerConfig(**TINY_IMAGE),
                    ImageTrainConfig(batch_size=4, disc_start=2, eval_max_items=2,
                                     mixed_precision=mp, **LOOP))
    for kind in ("speech", "image"):
        fp32, bf16 = _losses(tmp_path / f"{kind}_no"), _losses(tmp_path / f"{kind}_bf16")
        assert fp32 != bf16, f"{kind}: bf16 changed nothing (autocast not on?)"
        assert _close(fp32, bf16, 0.05), (kind, fp32, bf16)


def test_bf16_trains_the_lm_on_the_cpu(codes):  # noqa: F811
    for mp in ("no", "bf16"):
        train_lm(codes / f"lm_{mp}", TINY_LM, lm_train_config(codes, mixed_precision=mp))
    fp32, bf16 = _losses(codes / "lm_no"), _losses(codes / "lm_bf16")
    assert fp32 != bf16 and _close(fp32, bf16, 0.02), (fp32, bf16)


@pytest.mark.parametrize("kind", ["speech", "image"])
def test_compiled_tokenizer_training_matches_eager(kind, audio_folder, tmp_path):
    write_captioned_images(tmp_path / "imgs", {"train": 10, "valid": 2})
    for compiled in (False, True):
        out = tmp_path / f"{kind}_{compiled}"
        if kind == "speech":
            train_speech(audio_folder, out, SpeechTokenizerConfig(**TINY),
                         SpeechTrainConfig(batch_size=2, segment_seconds=0.4, eval_max_items=2,
                                           compile=compiled, **LOOP))
        else:  # with the GAN on from step 2: the adaptive weight's gradient through the graph
            train_image(tmp_path / "imgs", out, ImageTokenizerConfig(**TINY_IMAGE),
                        ImageTrainConfig(batch_size=4, disc_start=2, eval_max_items=2,
                                         compile=compiled, **LOOP))
    assert _close(_losses(tmp_path / f"{kind}_False"), _losses(tmp_path / f"{kind}_True"), 0.02)
