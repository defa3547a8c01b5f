"""Pushing to the Hub with the real huggingface_hub client, against LocalHub (a stand-in for the
Hub's upload endpoints on 127.0.0.1): what arrives, the model cards, where the token goes, and
that what arrives loads back to the same outputs. Nothing leaves the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import speechlike
from helpers import make_bundle, tiny_image_tokenizer
from local_hub import LocalHub

from speechtok import SpeechTokenizer
from speechtok.hub import push

TOKEN = "hf_testtoken123"  # a fake: it must reach the server as a Bearer header, never output
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def token(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_TOKEN", TOKEN)  # read per request, before any saved login
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # LocalHub is on loopback
    return TOKEN


@pytest.fixture
def hub(tmp_path, monkeypatch, token):
    """LocalHub with LFS for weights; the client set to use LFS rather than Xet, and pointed at
    the server through HF_ENDPOINT (which `push` reads when called)."""
    with LocalHub(tmp_path / "hub") as h, LocalHub.without_xet():
        monkeypatch.setenv("HF_ENDPOINT", h.endpoint)
        yield h


def front_matter(readme: Path) -> dict:
    text = readme.read_text()
    assert text.startswith("---\n"), text[:200]
    return yaml.safe_load(text.split("---\n")[1])


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def add_training_leftovers(folder: Path) -> None:
    """What a run directory holds besides the model, none of which may be uploaded."""
    for rel in ("checkpoints/last/model.safetensors", "checkpoints/last.tmp/optimizer.safetensors",
                "logs/lm/events.out.tfevents.1", "speech_tokenizer/checkpoints/last/x.safetensors"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"not for the hub")


def test_speechtok_push_private_branch_lfs_and_reload(tiny_tokenizer, tmp_path, hub, capfd):
    from speechtok.cli import main

    folder = tmp_path / "tok"
    tiny_tokenizer.save_pretrained(folder)
    add_training_leftovers(folder)
    assert main(["push", "--tokenizer", str(folder), "user/speech-tok", "--private",
                 "--revision", "v1"]) == 0
    printed = capfd.readouterr()
    assert TOKEN not in printed.out + printed.err
    assert f"{hub.endpoint}/user/speech-tok" in printed.out  # the repo / commit URL
    got = hub.path("user/speech-tok", "v1")
    assert files_under(got) == {"config.json", "model.safetensors", "README.md"}
    assert not files_under(hub.path("user/speech-tok", "main"))  # went to the branch only
    assert hub.repos["user/speech-tok"]["private"] is True
    assert hub.branches == [("user/speech-tok", "v1")]
    (commit,) = hub.commits
    assert commit["files"] == {"config.json": "regular", "README.md": "regular",
                               "model.safetensors": "lfs"}  # via the LFS batch API + PUT
    assert hub.authorizations and set(hub.authorizations) == {f"Bearer {TOKEN}"}
    meta = front_matter(got / "README.md")
    assert meta["library_name"] == "speechtok-lm" and "speech-tokenizer" in meta["tags"]
    back = SpeechTokenizer.from_pretrained(str(got)).eval()
    wav = torch.from_numpy(speechlike(1.0, seed=3))[None]
    assert torch.equal(back.encode(wav), tiny_tokenizer.encode(wav))


def test_regular_uploads_work_with_xet_installed_and_repush_is_a_no_op(tiny_tokenizer, tmp_path,
                                                                        token, capfd):
    """With no LFS patterns every file goes base64 inside the commit, so the default client
    (Xet when hf_xet is installed) needs no Xet; `endpoint=` overrides HF_ENDPOINT."""
    folder = tmp_path / "tok"
    tiny_tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text("---\nlibrary_name: speechtok-lm\n---\n# mine\n")
    with LocalHub(tmp_path / "hub", lfs_patterns=()) as hub:
        url = push(folder, "user/plain", endpoint=hub.endpoint)
        assert url.startswith(f"{hub.endpoint}/user/plain/commit/")
        assert hub.commits[0]["files"]["model.safetensors"] == "regular"
        assert hub.repos["user/plain"]["private"] is False and not hub.branches
        assert push(folder, "user/plain", endpoint=hub.endpoint) == url  # nothing changed
        assert len(hub.commits) == 1
        assert (hub.path("user/plain") / "README.md").read_text().endswith("# mine\n")  # kept
    assert TOKEN not in "".join(capfd.readouterr())


def test_xet_uploads_fail_loudly_without_the_token(tiny_tokenizer, tmp_path, token):
    pytest.importorskip("hf_xet")
    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    with LocalHub(tmp_path / "hub") as hub, pytest.raises(RuntimeError) as err:
        push(tmp_path / "tok", "user/xet", endpoint=hub.endpoint)  # LFS files → Xet → 501
    assert "xet-write-token" in str(err.value) and TOKEN not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_lm_push_round_trip_generates_identically(tiny_tokenizer, tmp_path, hub):
    """`lm push` in a subprocess (HF_ENDPOINT and HF_HUB_DISABLE_XET read at import), then the
    received folder must sample exactly what the original samples, seed for seed."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm.pipelines import Bundle, SpeechContinuation, TextToImage

    bundle = make_bundle(tmp_path / "bundle", tiny_tokenizer, tiny_image_tokenizer())
    (bundle / "train_history.json").write_text(json.dumps(
        [{"step": 4, "train/loss": 5.1, "eval/loss/audio": 2.75, "eval/tokens/audio": 99.0}]))
    add_training_leftovers(bundle)
    env = {**os.environ, **hub.client_env(), "HF_TOKEN": TOKEN, "OMP_NUM_THREADS": "1",
           "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    run = subprocess.run([sys.executable, "-m", "lm.cli", "push", str(bundle), "user/mm",
                          "--revision", "exp"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert TOKEN not in run.stdout + run.stderr and f"{hub.endpoint}/user/mm" in run.stdout
    assert set(hub.authorizations) == {f"Bearer {TOKEN}"}
    got = hub.path("user/mm", "exp")
    sent = files_under(bundle)
    assert files_under(got) == {f for f in sent if "checkpoints" not in f and
                                not f.startswith("logs/")}
    assert not any("checkpoints" in f or f.startswith("logs/") for f in files_under(got))
    modes = hub.commits[-1]["files"]
    assert modes["model.safetensors"] == modes["speech_tokenizer/model.safetensors"] == "lfs"
    meta = front_matter(got / "README.md")  # written at push time: the bundle had none
    assert meta["library_name"] == "transformers"
    assert {"speechtok-lm", "multimodal", "speech", "text-to-image"} <= set(meta["tags"])
    assert meta["metrics"] == ["loss/audio"]

    a, b = Bundle(bundle, "cpu"), Bundle(got, "cpu")
    draw = dict(num_images=2, seed=5, temperature=1.0, guidance_scale=2.0)
    mine, theirs = TextToImage(a)(["the letter a", "the digit 7"], **draw), \
        TextToImage(b)(["the letter a", "the digit 7"], **draw)
    assert torch.equal(mine.grids, theirs.grids) and torch.equal(mine.images, theirs.images)
    other = TextToImage(b)(["the letter a", "the digit 7"], **{**draw, "seed": 6})
    assert not torch.equal(other.grids, theirs.grids)  # the draw really is random
    wav = torch.from_numpy(speechlike(1.0, seed=2))
    talk = dict(prompt_seconds=0.5, max_seconds=0.4, seed=0, temperature=1.0)
    s1, s2 = SpeechContinuation(a)(wav, 16000, **talk), SpeechContinuation(b)(wav, 16000, **talk)
    assert torch.equal(s1.units[0], s2.units[0])
    assert torch.equal(s1.waveforms[0], s2.waveforms[0])

    lm_a, lm_b = (AutoModelForCausalLM.from_pretrained(str(p)).eval() for p in (bundle, got))
    ids = torch.tensor([a.vocab.encode_text("the letter b")])
    outs = []
    for model in (lm_a, lm_b):
        torch.manual_seed(11)
        outs.append(model.generate(ids, do_sample=True, temperature=1.0, top_k=0,
                                   max_new_tokens=12, pad_token_id=a.vocab.pad_id))
    assert torch.equal(*outs)
    assert len(AutoTokenizer.from_pretrained(str(got))) == len(a.vocab)


def test_bundle_card_metadata(tiny_tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    from lm.model_card import write_bundle_card
    from lm.train import write_bundle
    from lm.vocab import MultimodalVocab

    bundle = make_bundle(tmp_path / "bundle", tiny_tokenizer, None)
    trained = tmp_path / "trained"  # `lm train` writes the card with the bundle
    write_bundle(trained, AutoModelForCausalLM.from_pretrained(str(bundle)),
                 MultimodalVocab.from_pretrained(bundle), None, {}, {},
                 [{"step": 2, "eval/loss/audio": 3.0, "eval/bits/audio": 4.3}])
    assert front_matter(trained / "README.md")["metrics"] == ["loss/audio", "bits/audio"]
    write_bundle_card(bundle, datasets=["user/corpus"], metrics={"accuracy": 0.5, "note": "x"},
                      repo="user/mm")
    meta = front_matter(bundle / "README.md")
    assert meta["datasets"] == ["user/corpus"] and meta["metrics"] == ["accuracy"]
    assert "text-to-image" not in meta["tags"] and "speech" in meta["tags"]  # speech-only
    (result,) = meta["model-index"][0]["results"]
    assert result["metrics"] == [{"type": "accuracy", "value": 0.5, "name": "accuracy"}]
    text = (bundle / "README.md").read_text()
    assert 'AutoModelForCausalLM.from_pretrained("user/mm")' in text
    assert "from lm.pipelines import Bundle, SpeechContinuation" in text
    write_bundle_card(bundle)  # a refresh keeps the datasets the card recorded
    assert front_matter(bundle / "README.md")["datasets"] == ["user/corpus"]
    with LocalHub(tmp_path / "hub") as hub:  # and the Hub-side YAML check accepts it
        assert hub.validate_yaml({"content": text}) == {"errors": [], "warnings": []}


def test_push_errors_name_the_problem(tmp_path, capsys):
    from lm.cli import main as lm_main
    from speechtok.cli import main as tok_main

    (tmp_path / "empty").mkdir()
    for argv, message in [(["push", str(tmp_path / "nope"), "user/x"], "nope"),
                          (["push", str(tmp_path / "empty"), "user/x"], "model.safetensors")]:
        assert lm_main(argv) == 2
        assert message in capsys.readouterr().err
    assert tok_main(["push", "--tokenizer", str(tmp_path / "nope"), "user/x"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_tokenizer_card_lists_metric_names_and_tables_their_values(tmp_path):
    from speechtok.hub.model_card import write_model_card

    card = write_model_card(tmp_path, {"kind": "image", "resolution": 32, "downsample_factor": 4,
                                       "codebook_size": 240}, {"psnr": 29.73, "ssim": 0.985})
    assert front_matter(card)["metrics"] == ["psnr", "ssim"]  # the Hub spec: names only
    assert "| psnr | 29.73 |" in card.read_text()
