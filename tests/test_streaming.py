"""Streamed datasets (speechtok.streaming): step s's batch is the same with 0 or 2 loader
workers and after a resume, processes read disjoint rows, held-out rows are never trained on,
and both tokenizer trainers train from a stream."""

from __future__ import annotations

import io
from functools import partial

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY, speechlike
from helpers import TINY_IMAGE, collect_batches

from speechtok import ImageTokenizerConfig, SpeechTokenizerConfig
from speechtok.image.data import open_image_stream_splits
from speechtok.image.train import ImageTrainConfig, train_image
from speechtok.speech.data import open_stream_splits
from speechtok.speech.train import SpeechTrainConfig, train_speech
from speechtok.streaming import is_stream


def _flac(seconds: float, seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speechlike(seconds, 16000, seed=seed), 16000, format="FLAC")
    return buf.getvalue()


@pytest.fixture
def saved_speech(tmp_path):
    from datasets import Audio, Dataset

    n = 14
    Dataset.from_dict({"audio": [{"bytes": _flac(0.3 + 0.02 * i, i), "path": None}
                                 for i in range(n)], "text": [f"clip {i}" for i in range(n)]}
                      ).cast_column("audio", Audio()).save_to_disk(str(tmp_path / "saved"))
    return tmp_path / "saved"


def _texts(stream, start, n):
    return [it.meta["text"] for it in stream.rows(start, n)]


def test_stream_batches_workers_resume_processes_and_held_out_rows(saved_speech):
    train, valid = open_stream_splits(saved_speech, 16000, seed=3, process_index=0,
                                      num_processes=1, valid_rows=2, shuffle_buffer=4)
    make = partial(train.batch, batch_size=3, segment=1600, seed=5, process_index=0)
    # 24 rows: past one epoch of 12
    alone, workers = collect_batches(make, 0, 8, 0), collect_batches(make, 0, 8, 2)
    assert all(torch.equal(a, b) for a, b in zip(alone, workers, strict=True))
    resumed = collect_batches(make, 5, 8, 2)
    assert all(torch.equal(a, b) for a, b in zip(alone[5:], resumed, strict=True))
    held_out = [it.meta["text"] for it in valid.items]
    assert held_out == ["clip 0", "clip 1"]
    epoch0, epoch1 = _texts(train.stream, 0, 12), _texts(train.stream, 12, 12)
    assert sorted(epoch0) == sorted(epoch1) == sorted(f"clip {i}" for i in range(2, 14))
    assert epoch0 != [f"clip {i}" for i in range(2, 14)] and epoch0 != epoch1  # shuffled anew
    # two processes: disjoint rows that together make the training part
    parts = [open_stream_splits(saved_speech, 16000, 3, rank, 2, 2, 4)[0].stream
             for rank in (0, 1)]
    a, b = _texts(parts[0], 0, 6), _texts(parts[1], 0, 6)
    assert not set(a) & set(b) and sorted(a + b) == sorted(epoch0)


def test_streaming_is_for_saved_datasets_and_hub_names(audio_folder, saved_speech):
    assert is_stream("hub:openslr/librispeech_asr:clean", False)
    assert is_stream(saved_speech, True) and not is_stream(saved_speech, False)
    with pytest.raises(ValueError, match="file by file"):
        is_stream(audio_folder, True)


def test_tokenizer_trainers_train_from_streams(saved_speech, tmp_path):
    from datasets import Dataset
    from datasets import Image as ImageFeature
    from PIL import Image

    loop = dict(steps=3, eval_every=3, save_every=3, warmup_steps=1, log_every=1,
                streaming=True, shuffle_buffer=4, eval_max_items=2)
    train_speech(saved_speech, tmp_path / "speech", SpeechTokenizerConfig(**TINY),
                 SpeechTrainConfig(batch_size=2, segment_seconds=0.1, **loop))
    assert (tmp_path / "speech" / "model.safetensors").exists()
    rng = np.random.default_rng(0)
    pngs = []
    for _ in range(10):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(buf, "PNG")
        pngs.append({"bytes": buf.getvalue(), "path": None})
    Dataset.from_dict({"image": pngs}).cast_column("image", ImageFeature()).save_to_disk(
        str(tmp_path / "images"))
    train, valid = open_image_stream_splits(tmp_path / "images", 16, 0, 0, 1, 2, 4)
    assert train.batch(0, 3, seed=0).shape == (3, 3, 16, 16) and len(valid) == 2
    train_image(tmp_path / "images", tmp_path / "image", ImageTokenizerConfig(**TINY_IMAGE),
                ImageTrainConfig(batch_size=2, disc_start=3, **loop))
    assert (tmp_path / "image" / "model.safetensors").exists()
