"""The web demo's test server and helpers, shared by test_serve.py (the HTTP API) and
test_serve_browser.py (headless chromium); test code only, like local_hub.py.

`server` starts the real `lm serve` in a subprocess on a free port, on a tiny random bundle
(both tokenizers, a learned speech decoder, the maskgit task), once per test module;
LM_SERVE_TEST_BUNDLE=DIR serves that bundle instead (how the README's screenshot was taken)."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import tiny_config
from helpers import TINY_VOCODER, make_bundle, tiny_image_tokenizer
from PIL import Image

from lm.model import LMConfig
from lm.pipelines import save_generation_defaults
from speechtok import SpeechTokenizer
from speechtok.speech.vocoder import Vocoder, VocoderConfig

ROOT = Path(__file__).resolve().parents[1]
SERVE_LM = LMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                    intermediate_size=64, max_positions=1024)
MAX_UPLOAD_SECONDS = 5
MAX_UPLOAD_MB = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_serve_bundle(path: Path) -> Path:
    """A random bundle with both tokenizers, a learned speech decoder, the maskgit task."""
    torch.manual_seed(0)
    speech = SpeechTokenizer(tiny_config())
    speech.train()
    speech(torch.randn(4, 16000) * 0.1)  # k-means init of the codebook
    speech.eval()
    speech.attach_vocoder(Vocoder(VocoderConfig(**TINY_VOCODER)))
    make_bundle(path, speech, tiny_image_tokenizer(), config=SERVE_LM)
    (path / "train_config.yaml").write_text(yaml.safe_dump(
        {"LMTrainConfig": {"task_weights": {"speech": 1.0, "caption_image": 1.0,
                                            "maskgit_image": 0.5}}}))
    save_generation_defaults(path, "image", {"guidance_scale": 2.0, "temperature": 0.9})
    return path


def start_server(args: list[str], cwd: Path | None = None, env: dict | None = None,
                 url: str = "") -> subprocess.Popen:
    """Start a server process and wait until GET url/api/info answers."""
    proc = subprocess.Popen(args, cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}):\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url + "/api/info", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"the server did not answer in 180 s:\n{proc.stdout.read()}")


@pytest.fixture(scope="module", name="server")  # import `served` to use it as `server`
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    given = os.environ.get("LM_SERVE_TEST_BUNDLE")
    bundle = Path(given) if given else tiny_serve_bundle(root / "bundle")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server([sys.executable, "-m", "lm.cli", "serve", "--model", str(bundle),
                         "--port", str(port), "--max-upload-seconds", str(MAX_UPLOAD_SECONDS),
                         "--max-upload-mb", str(MAX_UPLOAD_MB)], url=url)
    yield {"url": url, "bundle": bundle, "root": root, "tiny": not given}
    proc.terminate()
    proc.wait(timeout=20)


def call(url: str, body: bytes | dict | None = None, query: str = "") -> tuple[int, dict]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url + (f"?{query}" if query else ""), data=data,
                                     method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=300) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def from_data_url(url: str, mime: str) -> bytes:
    head, payload = url.split(",", 1)
    assert head == f"data:{mime};base64", head
    return base64.b64decode(payload)


def wav_bytes(wav: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wav, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def png_of(url: str) -> Image.Image:
    return Image.open(io.BytesIO(from_data_url(url, "image/png")))
