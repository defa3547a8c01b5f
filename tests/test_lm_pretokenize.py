"""lm tokenize: media → codes once; shards from several processes equal one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_captioned_images
from helpers import tiny_image_tokenizer

from lm.cli import main
from lm.pretokenize import load_codes, pretokenize
from speechtok.auto import load_tokenizer
from speechtok.speech.io import load_audio

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def speech_tok_dir(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path / "speech_tok")
    return tmp_path / "speech_tok"


def test_speech_codes_match_the_tokenizer_and_shards_concatenate(speech_tok_dir, audio_folder,
                                                                 tmp_path):
    one = pretokenize("speech", audio_folder, speech_tok_dir, tmp_path / "one")
    assert one == {"all": 8}
    for rank in range(3):  # three processes' shards, written one after another
        pretokenize("speech", audio_folder, speech_tok_dir, tmp_path / "three", rank=rank,
                    world=3)
    a, b = load_codes(tmp_path / "one", "all"), load_codes(tmp_path / "three", "all")
    assert a["units"] == b["units"] and a["name"] == b["name"]
    tok = load_tokenizer(speech_tok_dir)
    first = audio_folder / a["name"][0]
    assert a["units"][0] == tok.encode(load_audio(first, tok.sample_rate)[None])[0].tolist()
    meta = json.loads((tmp_path / "one" / "pretokenized.json").read_text())
    assert meta["kind"] == "speech" and meta["codebook_size"] == tok.config.codebook_size
    with pytest.raises(ValueError, match="not image"):
        pretokenize("image", audio_folder, speech_tok_dir, tmp_path / "bad")


def test_image_codes_by_split(tmp_path):
    from PIL import Image

    tok = tiny_image_tokenizer()
    tok.save_pretrained(tmp_path / "img_tok")
    write_captioned_images(tmp_path / "imgs", {"train": 5, "test": 2}, size=(20, 16))
    counts = pretokenize("image", tmp_path / "imgs", tmp_path / "img_tok", tmp_path / "codes")
    assert counts == {"train": 5, "test": 2}
    test = load_codes(tmp_path / "codes", "test")
    assert test["text"] == ["picture 0", "picture 1"]
    img = Image.open(tmp_path / "imgs" / "test" / "1.png")
    assert test["codes"][1] == tok.encode(img)[0].flatten().tolist()


def test_accelerate_two_processes_equal_one(speech_tok_dir, audio_folder, tmp_path):
    pytest.importorskip("accelerate")
    args = ["tokenize", "--kind", "speech", "--data", str(audio_folder),
            "--tokenizer", str(speech_tok_dir)]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    # `--cpu` with num_processes > 1 starts ONE process here (accelerate 1.15 wants mpirun for
    # multi-CPU); `--multi_gpu` on a machine without CUDA runs torchrun with gloo on the CPU.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no",
           "-m", "lm.cli", *args, "--out", str(tmp_path / "two")]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "two" / "all").iterdir()) == [
        "shard-00000-of-00002", "shard-00001-of-00002"]
    a, b = load_codes(tmp_path / "one", "all"), load_codes(tmp_path / "two", "all")
    assert a["units"] == b["units"] and a["name"] == b["name"]
    assert torch.tensor([len(u) for u in a["units"]]).min() > 0


def test_killed_run_resumes_at_its_chunk_and_workers_change_nothing(speech_tok_dir,
                                                                    audio_folder, tmp_path):
    whole = pretokenize("speech", audio_folder, speech_tok_dir, tmp_path / "whole",
                        chunk_rows=3)
    # "killed" after 2 of its 3 chunks: no complete marker, load_codes refuses the shard
    out = tmp_path / "killed"
    assert pretokenize("speech", audio_folder, speech_tok_dir, out, chunk_rows=3,
                       stop_after_chunks=2) == {"all": "incomplete"}
    shard = out / "all" / "shard-00000-of-00001"
    assert sorted(p.name for p in shard.glob("chunk-*")) == ["chunk-00000", "chunk-00001"]
    with pytest.raises(ValueError, match="incomplete"):
        load_codes(out, "all")
    written = {p.name: p.stat().st_mtime_ns for p in shard.glob("chunk-*/*.arrow")}
    # started again (with 2 loader workers): only the third chunk is encoded
    assert pretokenize("speech", audio_folder, speech_tok_dir, out, chunk_rows=3,
                       num_workers=2) == whole
    assert {p.name: p.stat().st_mtime_ns for p in shard.glob("chunk-0000[01]/*.arrow")} == written
    a, b = load_codes(tmp_path / "whole", "all"), load_codes(out, "all")
    assert a["units"] == b["units"] and a["name"] == b["name"] and len(b) == 8
    # other settings than the partial run's: an error, not misaligned chunks
    (shard / "complete.json").unlink()
    with pytest.raises(ValueError, match="other settings"):
        pretokenize("speech", audio_folder, speech_tok_dir, out, chunk_rows=4)


def test_images_batched_equal_one_at_a_time(tmp_path):
    tok = tiny_image_tokenizer()
    tok.save_pretrained(tmp_path / "img_tok")
    write_captioned_images(tmp_path / "imgs", {"train": 7}, size=(20, 16))
    for b in (1, 4):
        pretokenize("image", tmp_path / "imgs", tmp_path / "img_tok", tmp_path / f"b{b}",
                    batch_size=b, chunk_rows=5)
    a, b = load_codes(tmp_path / "b1", "train"), load_codes(tmp_path / "b4", "train")
    assert a["codes"] == b["codes"] and len(a) == 7
