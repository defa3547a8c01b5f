"""Training and the command line, end to end on tiny models and synthetic audio."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from helpers import FAST, TINY_ARGS
from safetensors.torch import load_file

from speechtok.cli import main
from speechtok.speech import SpeechTokenizer, SpeechTokenizerConfig
from speechtok.speech.io import load_audio
from speechtok.speech.train import SpeechTrainConfig
from speechtok.training.config import build_configs, parse_overrides


def _train(data, out, *extra):
    assert main(["train", "speech", "--data", str(data), "--out", str(out),
                 *TINY_ARGS, *FAST, *extra]) == 0


def test_config_precedence_and_unknown_keys(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({"codebook_size": 64, "steps": 10, "lr": 0.01}))
    model_cfg, train_cfg = build_configs([SpeechTokenizerConfig, SpeechTrainConfig], cfg_file,
                                         parse_overrides(["--steps", "20", "--strides=[2, 2]"]))
    assert model_cfg.codebook_size == 64 and train_cfg.lr == 0.01
    assert train_cfg.steps == 20 and model_cfg.strides == (2, 2)
    with pytest.raises(ValueError, match="unknown config key.*codebok_size"):
        build_configs([SpeechTokenizerConfig], None, {"codebok_size": "3"})
    with pytest.raises(ValueError, match="--steps"):
        build_configs([SpeechTrainConfig], None, {"steps": "many"})


def test_train_writes_hub_folder_and_resume_is_exact(audio_folder, tmp_path):
    _train(audio_folder, tmp_path / "full", "--steps", "4")
    out = tmp_path / "full"
    assert {"config.json", "model.safetensors", "train_config.yaml",
            "train_history.json"} <= {p.name for p in out.iterdir()}
    history = json.loads((out / "train_history.json").read_text())
    assert [h["step"] for h in history] == [2, 4]
    assert 0 < history[-1]["eval/codebook_usage"] <= 1

    # A run killed after step 2, then resumed, ends bit-identical to the uninterrupted run.
    _train(audio_folder, tmp_path / "split", "--steps", "4", "--stop_after_steps", "2")
    assert json.loads((tmp_path / "split/checkpoints/last/trainer_state.json").read_text())[
        "step"] == 2
    _train(audio_folder, tmp_path / "split", "--steps", "4", "--resume")
    full = load_file(str(out / "model.safetensors"))
    split = load_file(str(tmp_path / "split" / "model.safetensors"))
    assert full.keys() == split.keys()
    for k in full:
        assert torch.equal(full[k], split[k]), k


def test_encode_decode_eval_cli(audio_folder, tmp_path, capsys):
    _train(audio_folder, tmp_path / "tok", "--steps", "2")
    files = sorted(str(p) for p in audio_folder.iterdir())[:3]
    units = tmp_path / "units.jsonl"
    assert main(["encode", "--tokenizer", str(tmp_path / "tok"), *files, "--out", str(units),
                 "--dedup"]) == 0
    rows = [json.loads(line) for line in units.read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["units"]) == len(r["durations"]) for r in rows)
    # 44.1 kHz stereo clip of 1.2 s → 60 frames at 50 Hz, whatever the dedup.
    assert sum(rows[1]["durations"]) == 60
    assert main(["decode", "--tokenizer", str(tmp_path / "tok"), str(units),
                 "--out", str(tmp_path / "out.wav")]) == 0
    assert sorted(p.name for p in tmp_path.glob("out-*.wav")) == [
        "out-0.wav", "out-1.wav", "out-2.wav"]
    # --voice: the same units spoken in the voice of a recording instead of the mean voice.
    first = tmp_path / "first.jsonl"
    first.write_text(units.read_text().splitlines()[0] + "\n")
    assert main(["decode", "--tokenizer", str(tmp_path / "tok"), str(first), "--voice",
                 files[1], "--out", str(tmp_path / "voiced.wav")]) == 0
    tok = SpeechTokenizer.from_pretrained(str(tmp_path / "tok")).eval()
    row = json.loads(first.read_text())
    expected = tok.decode(torch.tensor([row["units"]]), torch.tensor([row["durations"]]),
                          tok.speaker_embedding(load_audio(files[1], tok.sample_rate)[None]))[0]
    voiced = load_audio(tmp_path / "voiced.wav", tok.sample_rate)
    mean_voice = load_audio(tmp_path / "out-0.wav", tok.sample_rate)
    assert (voiced - expected).abs().max() < 1e-3  # 16-bit file
    assert (voiced - mean_voice).abs().max() > 1e-2
    capsys.readouterr()
    assert main(["eval", "--tokenizer", str(tmp_path / "tok"), "--data", str(audio_folder)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["items"] == 8 and metrics["bitrate_nominal"] == 50 * 4


def test_cli_errors_name_the_problem(audio_folder, tmp_path, capsys):
    bad = audio_folder / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav")
    assert main(["train", "speech", "--data", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "o"), *TINY_ARGS]) == 2
    assert "data not found" in capsys.readouterr().err
    assert main(["train", "speech", "--data", str(audio_folder), "--out", str(tmp_path / "o"),
                 "--codebok_size", "3"]) == 2
    assert "codebok_size" in capsys.readouterr().err
    tok = tmp_path / "tok"
    _train(_good_copy(audio_folder, tmp_path), tok, "--steps", "1")
    assert main(["encode", "--tokenizer", str(tok), str(bad)]) == 2
    assert "broken.wav" in capsys.readouterr().err
    units = tmp_path / "u.jsonl"
    units.write_text(json.dumps({"units": [1, 2, 999]}) + "\n")
    assert main(["decode", "--tokenizer", str(tok), str(units), "--out",
                 str(tmp_path / "o.wav")]) == 2
    assert "unit id 999" in capsys.readouterr().err


def _good_copy(folder, tmp_path):
    import shutil

    dst = tmp_path / "good"
    shutil.copytree(folder, dst, ignore=shutil.ignore_patterns("broken.wav"))
    return dst
