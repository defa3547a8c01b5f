"""GSLM's speech2unit as a tokenizer: `speechtok train kmeans` on a tiny random HuBERT (built
here, no download), its units, its unit vocoder, and its units through the LM."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch
from conftest import speechlike
from helpers import TINY_LM
from hf_tiny import save_tiny_hubert
from transformers import HubertModel

from lm.pipelines import SpeechContinuation
from lm.pretokenize import load_codes, pretokenize
from lm.train import LMTrainConfig, train_lm
from speechtok.cli import main as speechtok_main
from speechtok.tokenizer import load_tokenizer
from speechtok.tokenizer.kmeans_train import mini_batch_update

KMEANS = ["--layer", "2", "--clusters", "8", "--epochs", "2", "--init_frames", "200",
          "--batch_frames", "150", "--valid_fraction", "0.25"]


@pytest.fixture
def kmeans_dir(tmp_path, audio_folder):
    hubert = save_tiny_hubert(tmp_path / "hubert")
    out = tmp_path / "units"
    assert speechtok_main(["train", "kmeans", "--data", str(audio_folder), "--out", str(out),
                           "--features", f"hf:{hubert}", *KMEANS]) == 0
    return out


def test_units_are_the_nearest_centroids_of_the_layer(kmeans_dir, tmp_path, audio_folder,
                                                     capsys):
    tok = load_tokenizer(kmeans_dir)
    config = json.loads((kmeans_dir / "config.json").read_text())
    assert (config["kind"], config["layer"], config["clusters"]) == ("kmeans", 2, 8)
    # the saved copy keeps layers 1-3 of 3 (layer 2 and one beyond), and the card says what
    assert len(tok.features.encoder.layers) == 3
    assert "layer 2" in (kmeans_dir / "README.md").read_text()
    wav = torch.from_numpy(speechlike(1.0, seed=5))[None]
    units = tok.encode(wav)
    full = HubertModel.from_pretrained(tmp_path / "hubert").eval()
    with torch.no_grad():
        feats = full(wav, output_hidden_states=True).hidden_states[2][0]
    nearest = torch.cdist(feats, tok.centroids).argmin(1)
    assert units.shape == (1, 49) and torch.equal(units[0], nearest)
    assert tok.layout.frame_rate == 50 and tok.layout.deduplicated
    with pytest.raises(ValueError, match="no unit vocoder"):
        tok.decode(units)
    capsys.readouterr()
    assert speechtok_main(["eval", "--tokenizer", str(kmeans_dir), "--data",
                           str(audio_folder)]) == 0  # the units' figures, no decoder needed
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["items"] == 8 and 0 < metrics["codebook_usage"] <= 1


def test_mini_batch_update_moves_centroids_to_the_running_mean():
    centroids = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    seen = torch.tensor([1.0, 0.0])
    x = torch.tensor([[1.0, 1.0], [3.0, 3.0], [9.0, 9.0]])
    assign = mini_batch_update(centroids, seen, x)
    assert assign.tolist() == [0, 0, 1]
    # centroid 0: mean of its old point (0, 0) and the two new ones; centroid 1 had none
    assert torch.allclose(centroids, torch.tensor([[4 / 3, 4 / 3], [9.0, 9.0]]))
    assert seen.tolist() == [3.0, 1.0]


def test_unit_vocoder_decodes_and_units_train_an_lm(kmeans_dir, audio_folder, tmp_path):
    assert speechtok_main(["train", "vocoder", "--tokenizer", str(kmeans_dir), "--data",
                           str(audio_folder), "--steps", "2", "--batch_size", "2",
                           "--segment_seconds", "0.4", "--dim", "16", "--intermediate_dim",
                           "32", "--blocks", "2", "--eval_every", "2", "--save_every", "2",
                           "--warmup_steps", "1", "--eval_max_items", "1"]) == 0
    wav = sorted(audio_folder.glob("*.wav"))[0]
    units = tmp_path / "units.jsonl"
    assert speechtok_main(["encode", "--tokenizer", str(kmeans_dir), str(wav), "--dedup",
                           "--out", str(units)]) == 0
    row = json.loads(units.read_text())
    assert speechtok_main(["decode", "--tokenizer", str(kmeans_dir), str(units), "--out",
                           str(tmp_path / "back.wav")]) == 0
    audio, sr = sf.read(tmp_path / "back.wav")
    assert sr == 16000 and len(audio) == sum(row["durations"]) * 320

    pretokenize(None, audio_folder, kmeans_dir, tmp_path / "codes")
    assert max(max(u) for u in load_codes(tmp_path / "codes", "all")["units"]) < 8
    cfg = LMTrainConfig(speech_codes=str(tmp_path / "codes"), text_vocab_size=280,
                        block_size=128, samples_per_step=4, steps=2, eval_every=2,
                        save_every=2, warmup_steps=1, eval_batches=1,
                        task_weights={"speech": 1.0})
    train_lm(tmp_path / "bundle", TINY_LM, cfg)
    pipe = SpeechContinuation.from_pretrained(tmp_path / "bundle", device="cpu")
    prompt = torch.from_numpy(speechlike(1.0, seed=2))
    out = pipe(prompt, 16000, prompt_seconds=0.5, max_seconds=0.3, seed=0, min_seconds=0.1)
    prompt_frames = int(pipe.prompt_units(prompt, 16000, 0.5)[1].sum())
    frames = prompt_frames + int(out.durations[0].sum())
    assert len(out.units[0]) > 0 and out.waveforms[0].shape[-1] == frames * 320
