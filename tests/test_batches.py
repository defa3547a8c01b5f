"""Training batches come through a DataLoader and are the same with 0 or 2 worker processes,
and a resumed loader starts at the batch of the step it resumes at."""

from __future__ import annotations

import json
from functools import partial

import pytest
import soundfile as sf
import torch
from conftest import TINY, speechlike, write_captioned_images
from helpers import TINY_IMAGE, collect_batches

from speechtok import ImageTokenizerConfig, SpeechTokenizerConfig
from speechtok.image.data import open_image_splits
from speechtok.image.train import ImageTrainConfig, train_image
from speechtok.speech.data import open_splits
from speechtok.speech.train import SpeechTrainConfig, train_speech
from speechtok.training.batches import next_batch, step_batches


def test_speech_batches_are_the_same_with_workers_and_after_resume(audio_folder):
    train, _ = open_splits(audio_folder, 16000)
    make = partial(train.batch, batch_size=3, segment=3200, seed=5, process_index=0)
    rng = torch.get_rng_state()
    alone, workers = collect_batches(make, 0, 6, 0), collect_batches(make, 0, 6, 2)
    # the loaders drew nothing from the global RNG, which initialisation and restarts use
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(alone, workers, strict=True))
    assert not torch.equal(alone[0], alone[1])  # steps differ
    resumed = collect_batches(make, 4, 6, 2)
    assert all(torch.equal(a, b) for a, b in zip(alone[4:], resumed, strict=True))
    with pytest.raises(RuntimeError, match="step 4 at step 5"):
        next_batch(step_batches(make, 4, 6), 5)


def test_image_batches_are_the_same_with_workers(tmp_path):
    write_captioned_images(tmp_path / "imgs", {"train": 10, "valid": 2})
    train, _ = open_image_splits(tmp_path / "imgs", 16)
    make = partial(train.batch, batch_size=4, seed=1, process_index=0)
    assert all(torch.equal(a, b) for a, b in zip(collect_batches(make, 0, 5, 0),
                                                 collect_batches(make, 0, 5, 2), strict=True))


def _history(out):
    timing = ("seconds", "data_wait", "steps_per_second")
    return [{k: v for k, v in h.items() if k not in timing}
            for h in json.loads((out / "train_history.json").read_text())]


def test_trainers_train_the_same_with_two_workers(audio_folder, tmp_path):
    loop = dict(steps=4, eval_every=2, save_every=4, warmup_steps=1, log_every=2)
    for workers in (0, 2):
        train_speech(audio_folder, tmp_path / f"speech{workers}", SpeechTokenizerConfig(**TINY),
                     SpeechTrainConfig(batch_size=2, segment_seconds=0.4, eval_max_items=2,
                                       num_workers=workers, **loop))
    assert _history(tmp_path / "speech0") == _history(tmp_path / "speech2")
    last = json.loads((tmp_path / "speech2" / "train_history.json").read_text())[-1]
    assert 0 <= last["data_wait"] < 1 and last["steps_per_second"] > 0
    write_captioned_images(tmp_path / "imgs", {"train": 10, "valid": 2})
    for workers in (0, 2):
        train_image(tmp_path / "imgs", tmp_path / f"image{workers}",
                    ImageTokenizerConfig(**TINY_IMAGE),
                    ImageTrainConfig(batch_size=4, disc_start=2, eval_max_items=2,
                                     num_workers=workers, **loop))
    assert _history(tmp_path / "image0") == _history(tmp_path / "image2")


def test_audio_metadata_in_the_audiofolder_convention(tmp_path):
    folder = tmp_path / "voice"
    folder.mkdir()
    for i in range(3):
        sf.write(folder / f"u{i}.flac", speechlike(0.5, seed=i), 16000)
    rows = [{"file_name": f"u{i}.flac", "text": f"utterance {i}"} for i in range(3)]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    train, valid = open_splits(folder, 16000, valid_fraction=0.34)
    items = sorted(train.items + valid.items, key=lambda it: it.name)
    assert [it.meta["text"] for it in items] == ["utterance 0", "utterance 1", "utterance 2"]
    (folder / "metadata.jsonl").write_text(json.dumps({"text": "no file"}) + "\n")
    with pytest.raises(ValueError, match="metadata.jsonl:1: .*'file_name'"):
        open_splits(folder, 16000)
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "gone.flac"}) + "\n")
    with pytest.raises(FileNotFoundError, match="gone.flac does not exist"):
        open_splits(folder, 16000)


def test_automatic_workers_follow_the_cores(monkeypatch):
    from speechtok.training import batches

    monkeypatch.setattr(batches.os, "sched_getaffinity", lambda pid: set(range(2)))
    assert batches.auto_workers(-1) == 0 and batches.auto_workers(3) == 3
    monkeypatch.setattr(batches.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert batches.auto_workers(-1) == 2
    with pytest.raises(ValueError, match="num_workers must be ≥ 0, or -1"):
        SpeechTrainConfig(num_workers=-2)
