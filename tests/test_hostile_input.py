"""Careless and hostile input: small files that would take gigabytes, tampered bundles, and
the server's limits. Each is a clear error (or bounded work), never a traceback or a hang;
benchmarks/bench_hostile.py reports the peak memory of each."""

from __future__ import annotations

import io
import json

import pytest
import soundfile as sf
import torch
from conftest import speechlike
from helpers import make_bundle, tiny_image_tokenizer
from PIL import Image

from lm.cli import main as lm_main
from lm.serve.app import MAX_JSON_BYTES, build_app
from lm.serve.capabilities import Capabilities
from speechtok.cli import main as speechtok_main
from speechtok.speech.io import MAX_RATE_DENOMINATOR, rational_rates, resample


# ---- small files that asked for gigabytes ---------------------------------------------------
@pytest.mark.parametrize("rate", [16001, 44101, 12345, 7999])
def test_odd_rates_resample_through_a_small_ratio(rate):
    p, q = rational_rates(rate, 16000)
    assert p <= MAX_RATE_DENOMINATOR and abs(q / p - 16000 / rate) < 1e-3 * 16000 / rate
    wav = torch.from_numpy(speechlike(0.5, rate))
    out = resample(wav, rate, 16000)
    assert abs(len(out) - 8000) <= 8  # the length of 0.5 s at 16 kHz, to a speed of 1/1000


def test_common_rates_stay_exact():
    assert rational_rates(44100, 16000) == (441, 160) and rational_rates(48000, 16000) == (3, 1)
    with pytest.raises(ValueError, match="outside 1,000 to 768,000 Hz"):
        resample(torch.zeros(10), 1, 16000)


def test_a_wav_at_16001_hz_encodes(tiny_tokenizer, tmp_path, capsys):
    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    sf.write(tmp_path / "odd.wav", speechlike(1.0, 16001), 16001)  # 32 KB
    assert speechtok_main(["encode", "--tokenizer", str(tmp_path / "tok"),
                           str(tmp_path / "odd.wav")]) == 0
    # its 16,001 samples are read as 16 kHz (0.006 % slower): ceil(16,001 / 320) frames
    assert len(json.loads(capsys.readouterr().out)["units"]) == 51


def test_a_one_pixel_high_png_is_refused_before_decoding(tmp_path, capsys):
    tiny_image_tokenizer().save_pretrained(tmp_path / "tok")
    Image.new("1", (1_000_000, 1)).save(tmp_path / "line.png")  # 2 KB
    assert speechtok_main(["encode", "--tokenizer", str(tmp_path / "tok"),
                           str(tmp_path / "line.png")]) == 2
    err = capsys.readouterr().err
    assert "line.png: 1000000×1 pixels, an aspect ratio over 100:1" in err
    assert len(err.strip().splitlines()) == 1 and "cannot read" not in err


def test_an_elongated_image_is_cut_before_the_resize():
    from speechtok.image.io import prepare_images

    img = Image.new("RGB", (3000, 40), (10, 200, 30))  # 75:1, allowed
    x = prepare_images(img, 32)
    assert x.shape == (1, 3, 32, 32)
    assert torch.allclose(x[0, :, 16, 16], torch.tensor([10, 200, 30]) / 255, atol=0.01)


# ---- tampered bundles: one line, no traceback, a non-zero exit ------------------------------
@pytest.fixture
def image_bundle(tmp_path):
    return make_bundle(tmp_path / "bundle", None, tiny_image_tokenizer())


def _tamper_layers(b):
    config = json.loads((b / "config.json").read_text())
    config["num_hidden_layers"] += 1
    (b / "config.json").write_text(json.dumps(config))


def _tamper_huge(b):
    config = json.loads((b / "config.json").read_text())
    config["num_hidden_layers"] = 10 ** 6
    (b / "config.json").write_text(json.dumps(config))


def _truncate(b):
    data = (b / "model.safetensors").read_bytes()
    (b / "model.safetensors").write_bytes(data[: len(data) // 2])


def _resolution(b):
    path = b / "image_tokenizer" / "config.json"
    config = json.loads(path.read_text())
    config["resolution"] = 10 ** 6
    path.write_text(json.dumps(config))


def _custom_code(b):
    path = b / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    config["tokenizer_class"] = "EvilTokenizer"
    path.write_text(json.dumps(config))


TAMPERING = {
    "one more layer": (_tamper_layers, "model.safetensors does not fit the LM"),
    "10⁶ layers": (_tamper_huge, "num_hidden_layers = 1000000 is outside"),
    "truncated weights": (_truncate, "model.safetensors: not a whole safetensors file"),
    "empty weights": (lambda b: (b / "model.safetensors").write_bytes(b""),
                      "model.safetensors: not a whole safetensors file"),
    "broken vocab": (lambda b: (b / "multimodal_vocab.json").write_text("{oops"),
                     "multimodal_vocab.json: broken JSON"),
    "huge resolution": (_resolution, "image_tokenizer/config.json: resolution = 1,000,000"),
    "custom code": (_custom_code, "tokenizer_config.json: names custom tokenizer code"),
}


@pytest.mark.parametrize("case", TAMPERING)
def test_a_tampered_bundle_is_one_clear_line(case, image_bundle, tmp_path, capsys):
    tamper, message = TAMPERING[case]
    tamper(image_bundle)
    code = lm_main(["generate", "image", "--model", str(image_bundle), "--caption",
                    "the letter a", "--out", str(tmp_path / "g.png"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_weight_of_the_wrong_shape_names_the_tensor(tmp_path):
    from safetensors.torch import save_file

    from speechtok.tokenizer import load_tokenizer

    tok = tiny_image_tokenizer()
    tok.save_pretrained(tmp_path / "tok")
    state = {k: v.contiguous() for k, v in tok.state_dict().items()}
    name = next(iter(state))
    state[name] = torch.zeros(3, 3)
    save_file(state, str(tmp_path / "tok" / "model.safetensors"))
    with pytest.raises(ValueError, match=f"mis-shaped \\['{name}'\\]"):
        load_tokenizer(tmp_path / "tok")


# ---- lm serve's limits ----------------------------------------------------------------------
@pytest.fixture
def client(image_bundle):
    from starlette.testclient import TestClient

    caps = Capabilities(image_bundle, device="cpu")
    return TestClient(build_app(image_bundle, capabilities=caps, max_upload_mb=1))


def test_a_json_body_over_the_limit_is_refused_unread(client):
    body = json.dumps({"caption": "a" * (MAX_JSON_BYTES + 10)})
    r = client.post("/api/text_to_image", content=body)
    assert r.status_code == 413 and "JSON body limit" in r.json()["error"]
    assert client.get("/api/info").status_code == 200


def test_captions_are_bounded_by_the_lm_context(client):
    # TINY_LM has 128 positions; the 4×4 image takes 16 of them, <bos> <boi> <eoi> three
    r = client.post("/api/text_to_image", json={"caption": "the letter a " * 2000})
    assert r.status_code == 400 and "characters; the LM's context leaves" in r.json()["error"]
    r = client.post("/api/text_to_image", json={"caption": "the letter a " * 40})
    assert r.status_code == 400 and "positions leaves 109 for it" in r.json()["error"]
    r = client.post("/api/text_to_image",
                    content=b'{"caption": "the letter \\ud800"}')
    assert r.status_code == 400 and "surrogate" in r.json()["error"]
    r = client.post("/api/text_to_image", json={"caption": ["a", "list"]})
    assert r.status_code == 400 and "must be text" in r.json()["error"]


def test_uploads_stream_to_disk_and_the_limit_holds(client):
    png = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(png, format="PNG")
    r = client.post("/api/image_tokenizer?name=red.png", content=png.getvalue())
    assert r.status_code == 200 and r.json()["resolution"] == 16
    big = b"\0" * (2 * 2**20)
    r = client.post("/api/image_tokenizer?name=big.png", content=big)
    assert r.status_code == 413 and "2,097,152 bytes, over the limit of 1 MB" in r.json()["error"]


def test_a_full_queue_refuses_before_reading_the_body(client):
    queue = client.app.state.queue
    queue.waiting = queue.max_waiting
    try:
        r = client.post("/api/image_tokenizer", content=b"\0" * 10)
        assert r.status_code == 503
    finally:
        queue.waiting = 0


# ---- runs: a changed config on --resume, two runs on one --out -----------------------------
def _train(data, out, *extra) -> int:
    from helpers import FAST, TINY_ARGS

    return speechtok_main(["train", "speech", "--data", str(data), "--out", str(out),
                           *TINY_ARGS, *FAST, *extra])


def test_resume_refuses_a_changed_config(audio_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(audio_folder, out, "--steps", "4", "--stop_after_steps", "2") == 0
    saved = (out / "train_config.yaml").read_text()
    capsys.readouterr()
    assert _train(audio_folder, out, "--steps", "4", "--resume", "--lr", "0.5",
                  "--seed", "3") == 2
    err = capsys.readouterr().err.strip()
    assert "lr 0.002 → 0.5" in err and "seed 0 → 3" in err and len(err.splitlines()) == 1
    assert (out / "train_config.yaml").read_text() == saved  # not rewritten
    # what a resumed run may change: how long it runs and how often it saves
    assert _train(audio_folder, out, "--steps", "6", "--save_every", "3", "--resume") == 0
    assert json.loads((out / "train_history.json").read_text())[-1]["step"] == 6


def test_a_second_run_on_the_same_out_is_refused(audio_folder, tmp_path, capsys):
    import os
    import socket
    import subprocess
    import sys

    out = tmp_path / "run"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".run.lock").write_text(json.dumps({"host": socket.gethostname(),
                                                   "pid": sleeper.pid}))
        assert _train(audio_folder, out, "--steps", "2") == 2
        err = capsys.readouterr().err
        assert f"in use by another training run (process {sleeper.pid})" in err
    finally:
        sleeper.kill()
        sleeper.wait()
    # the run that held it is gone: its lock is taken over, and released at the end
    assert _train(audio_folder, out, "--steps", "2") == 0
    assert "taking over the lock" in capsys.readouterr().out
    assert not (out / ".run.lock").exists() and os.path.exists(out / "model.safetensors")


# ---- outputs and the decoder's input ---------------------------------------------------------
def test_a_failed_encode_leaves_the_old_output(tiny_tokenizer, audio_folder, tmp_path, capsys):
    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    keep = tmp_path / "keep.jsonl"
    keep.write_text("precious\n")
    good = sorted(audio_folder.glob("*.wav"))[0]
    (tmp_path / "bad_dir").mkdir()
    code = speechtok_main(["encode", "--tokenizer", str(tmp_path / "tok"), str(good),
                           str(tmp_path / "bad_dir"), "--out", str(keep)])
    assert code == 2 and keep.read_text() == "precious\n"
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


DECODE_CASES = {
    "a string": ({"units": "hello"}, "'units' must be a non-empty list of whole numbers"),
    "null": ({"units": None}, "has no 'units'"),
    "a huge id": ({"units": [1, 10 ** 30]}, "'units' must be a non-empty list of whole numbers"),
    "out of range": ({"units": [1, 999]}, "unit id 999 is out of range [0, 16)"),
    "a billion frames": ({"units": [1, 2, 3], "durations": [1, 10 ** 9, 2]},
                         "over the limit of 3,600 s a line"),
    "bad durations": ({"units": [1, 2], "durations": [1, 0]}, "one run length ≥ 1 per unit"),
}


def test_each_line_decodes_with_its_own_run_lengths(tiny_tokenizer, tmp_path, capsys):
    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    (tmp_path / "u.jsonl").write_text(json.dumps({"units": [1, 2], "durations": [3, 4]}) + "\n"
                                      + json.dumps({"units": [5, 6, 7]}) + "\n")
    assert speechtok_main(["decode", "--tokenizer", str(tmp_path / "tok"),
                           str(tmp_path / "u.jsonl"), "--out", str(tmp_path / "o.wav")]) == 0
    lengths = [len(sf.read(tmp_path / f"o-{i}.wav")[0]) for i in (0, 1)]
    assert lengths == [7 * 320, 3 * 320]


@pytest.mark.parametrize("case", DECODE_CASES)
def test_decode_input_is_checked(case, tiny_tokenizer, tmp_path, capsys):
    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    row, message = DECODE_CASES[case]
    (tmp_path / "u.jsonl").write_text(json.dumps(row) + "\n")
    code = speechtok_main(["decode", "--tokenizer", str(tmp_path / "tok"),
                           str(tmp_path / "u.jsonl"), "--out", str(tmp_path / "o.wav")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--temperature", "nan", "must be a finite number from 0 to 100, got nan"),
    ("--prompt-seconds", "-1", "must be a finite number from 0 to 3600, got -1"),
    ("--max-seconds", "inf", "must be a finite number from 0.01 to 600, got inf"),
    ("--top-k", "many", "must be a whole number, got 'many'"),
])
def test_generate_options_are_checked(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        lm_main(["generate", "speech", "--model", "m", "--prompt", "p.wav", "--out", "o.wav",
                 flag, value])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
