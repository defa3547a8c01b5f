"""Image corpus, data loading, training (GAN start, resume) and the CLI, on tiny models."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from helpers import TINY_IMAGE
from PIL import Image
from safetensors.torch import load_file

from speechtok.cli import main
from speechtok.image.data import open_image_eval_source, open_image_splits

ROOT = Path(__file__).resolve().parents[1]
TINY_ARGS = [f"--{k}={json.dumps(v)}" for k, v in TINY_IMAGE.items()]
FAST = ["--batch_size", "4", "--eval_every", "1", "--save_every", "2", "--warmup_steps", "1",
        "--eval_max_items", "8", "--grid_images", "4", "--disc_channels", "8",
        "--disc_layers", "1"]


def _corpus_module():
    spec = importlib.util.spec_from_file_location(
        "make_image_corpus", ROOT / "recipes/builtin/make_image_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def glyphs(tmp_path_factory):
    """The built-in corpus script on the installed DejaVu faces: two families held out."""
    corpus = _corpus_module()
    faces = [f for f in corpus.find_faces() if f[0].startswith("DejaVu")]
    families = sorted({f[0] for f in faces})
    assert len(families) >= 3, "the DejaVu fonts (fonts-dejavu-core) are required"
    out = tmp_path_factory.mktemp("glyphs") / "corpus"
    corpus.build_corpus(out, size=16, margin=1, valid=(families[0],), test=(families[1],),
                        faces=faces)
    return out, families


def test_corpus_splits_by_family_with_captions(glyphs):
    out, families = glyphs
    rows = {s: [json.loads(x) for x in (out / s / "metadata.jsonl").read_text().splitlines()]
            for s in ("train", "valid", "test")}
    assert {r["family"] for r in rows["valid"]} == {families[0]}
    assert {r["family"] for r in rows["test"]} == {families[1]}
    assert not {r["family"] for r in rows["train"]} & {families[0], families[1]}
    for split, split_rows in rows.items():
        for r in split_rows[:20]:
            img = Image.open(out / split / r["file_name"])
            assert img.size == (16, 16) and img.mode == "RGB"
            what = "digit" if r["kind"] == "digit" else f"{r['kind']} letter"
            assert r["text"].startswith(r["family"])
            assert r["text"].endswith(f", the {what} {r['char']}")
    texts = {r["text"] for r in rows["train"]}
    assert "DejaVu Sans Bold, the uppercase letter G" in texts | {r["text"] for r in
                                                                    rows["valid"] + rows["test"]}
    # 62 characters per face, none blank
    per_face = {}
    for r in rows["train"]:
        per_face[(r["family"], r["style"])] = per_face.get((r["family"], r["style"]), 0) + 1
    assert set(per_face.values()) == {62}


def test_datasets_reads_corpus_and_saved_dataset_trains_source(glyphs, tmp_path):
    from datasets import load_dataset

    out, _ = glyphs
    ds = load_dataset("imagefolder", data_dir=str(out))  # the corpus is an imagefolder
    assert set(ds) >= {"train", "test"} and "text" in ds["train"].column_names
    ds.save_to_disk(str(tmp_path / "saved"))
    train, valid = open_image_splits(tmp_path / "saved", 16)
    assert len(train) == ds["train"].num_rows
    assert len(valid) == ds["validation"].num_rows
    x = train.batch(0, 3, seed=0)
    assert x.shape == (3, 3, 16, 16) and torch.equal(x, train.batch(0, 3, seed=0))
    # the same pixels as reading the folder directly
    test = open_image_eval_source(out, 16, "test")
    assert test.items[0].meta["text"].endswith(", the digit 0")


def _train(data, out, *extra):
    assert main(["train", "image", "--data", str(data), "--out", str(out), *TINY_ARGS, *FAST,
                 *extra]) == 0


def test_discriminator_starts_at_disc_start(glyphs, tmp_path):
    out, _ = glyphs
    _train(out, tmp_path / "run", "--steps", "4", "--disc_start", "2", "--log_every", "2")
    history = json.loads((tmp_path / "run" / "train_history.json").read_text())
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    curve = json.loads((tmp_path / "run" / "train_curve.json").read_text())
    assert [p["step"] for p in curve] == [2, 4]  # the loss curve: windows of 2 steps
    assert curve[1]["train/l1"] == pytest.approx(
        (history[2]["train/l1"] + history[3]["train/l1"]) / 2, abs=1e-4)
    assert [("train/gan_d" in h) for h in history] == [False, False, True, True]
    assert all(h["train/gan_lambda"] > 0 for h in history[2:])
    assert (tmp_path / "run" / "reconstructions.png").exists()
    assert 0 < history[-1]["eval/codebook_usage"] <= 1 and history[-1]["eval/psnr"] > 0


def test_resume_is_exact_with_both_optimisers(glyphs, tmp_path):
    out, _ = glyphs
    common = ["--steps", "4", "--disc_start", "1"]
    _train(out, tmp_path / "full", *common)
    _train(out, tmp_path / "split", *common, "--stop_after_steps", "2")
    ckpt = tmp_path / "split" / "checkpoints" / "last"
    assert {"discriminator.safetensors", "discriminator_optimizer.safetensors"} <= {
        p.name for p in ckpt.iterdir()}
    _train(out, tmp_path / "split", *common, "--resume")
    for name in ("model.safetensors", "checkpoints/last/discriminator.safetensors"):
        a, b = load_file(tmp_path / "full" / name), load_file(tmp_path / "split" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}: {k} differs after resume"


def test_cli_encode_decode_eval_images(glyphs, tmp_path, capsys):
    out, _ = glyphs
    _train(out, tmp_path / "tok", "--steps", "2", "--disc_start", "100")
    png = next((out / "test").glob("*.png"))
    assert main(["encode", "--tokenizer", str(tmp_path / "tok"), str(png),
                 "--out", str(tmp_path / "codes.jsonl")]) == 0
    row = json.loads((tmp_path / "codes.jsonl").read_text())
    assert len(row["codes"]) == 4 and len(row["codes"][0]) == 4
    assert main(["decode", "--tokenizer", str(tmp_path / "tok"), str(tmp_path / "codes.jsonl"),
                 "--out", str(tmp_path / "back.png")]) == 0
    assert Image.open(tmp_path / "back.png").size == (16, 16)
    capsys.readouterr()
    assert main(["eval", "--tokenizer", str(tmp_path / "tok"), "--data", str(out),
                 "--max-items", "8"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"psnr", "ssim", "codebook_usage", "perplexity"} <= set(metrics)
    # out-of-range code and a corrupt image are errors naming them
    row["codes"][0][0] = 999
    (tmp_path / "bad.jsonl").write_text(json.dumps(row) + "\n")
    assert main(["decode", "--tokenizer", str(tmp_path / "tok"), str(tmp_path / "bad.jsonl"),
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "999" in capsys.readouterr().err
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert main(["encode", "--tokenizer", str(tmp_path / "tok"),
                 str(tmp_path / "broken.png")]) == 2
    assert "broken.png" in capsys.readouterr().err
