"""`lm serve`, the web demo, through its HTTP API: the real server (`lm serve` in a subprocess
on a free port, tests/serve_helpers.py) on a tiny random bundle; then the app's queue and error
handling in process. The page itself is driven in headless chromium by test_serve_browser.py."""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import speechlike
from helpers import make_bundle
from PIL import Image
from serve_helpers import (
    MAX_UPLOAD_MB,
    MAX_UPLOAD_SECONDS,
    SERVE_LM,
    call,
    free_port,
    from_data_url,
    png_of,
    served,  # noqa: F401 (the `server` fixture)
    start_server,
    wav_bytes,
)


# ---- the HTTP API -----------------------------------------------------------------------------
def test_info_says_what_the_bundle_can_do(server):
    status, info = call(server["url"] + "/api/info")
    assert status == 200
    assert info["image"] and info["speech"]
    if server["tiny"]:
        assert info["maskgit"] and info["learned_vocoder"]
        assert info["defaults"]["image"]["guidance_scale"] == 2.0  # the bundle's, not built-in
        assert info["resolution"] == 16


def test_text_to_image_gives_images_of_the_tokenizers_size(server):
    url = server["url"] + "/api/text_to_image"
    status, out = call(url, {"caption": "the letter a", "num_images": 3, "seed": 5})
    assert status == 200, out
    _, info = call(server["url"] + "/api/info")
    images = [png_of(u) for u in out["images"]]
    assert len(images) == 3
    assert all(im.size == (info["resolution"],) * 2 for im in images)
    assert out["width"] == out["height"] == info["resolution"]
    # unset controls take the bundle's defaults; the seed makes the draw reproducible
    assert out["settings"]["guidance_scale"] == info["defaults"]["image"]["guidance_scale"]
    _, again = call(url, {"caption": "the letter a", "num_images": 3, "seed": 5})
    assert again["images"] == out["images"]
    _, maskgit = call(url, {"caption": "the letter b", "num_images": 2, "decoding": "maskgit",
                            "steps": 4, "temperature": 1.0})
    if info["maskgit"]:
        assert len(maskgit["images"]) == 2 and maskgit["settings"]["steps"] == 4
    else:
        assert "maskgit" in maskgit["error"]


@pytest.mark.parametrize("body, message", [
    ({"caption": "   "}, "caption first: it is empty"),
    ({"caption": "the letter a", "temperature": "hot"}, "temperature must be a number"),
    ({"caption": "the letter a", "num_images": 99}, "number of images must be between 1 and"),
    ({"caption": "the letter a", "colour": "red"}, "unknown field(s) colour"),
    ({"caption": "the letter a", "decoding": "diffusion"}, "decoding must be causal or maskgit"),
])
def test_bad_captions_and_settings_are_messages(server, body, message):
    status, out = call(server["url"] + "/api/text_to_image", body)
    assert status == 400 and message in out["error"], out


def test_a_caption_spelling_a_special_token_is_named(server):
    status, out = call(server["url"] + "/api/text_to_image", {"caption": "draw <boi> here"})
    assert status == 400 and "'<boi>'" in out["error"], out


def test_four_concurrent_caption_requests_all_finish(server):
    url = server["url"] + "/api/text_to_image"
    results, start = [None] * 4, threading.Barrier(4)

    def ask(k):
        start.wait()
        results[k] = call(url, {"caption": f"the digit {k}", "num_images": 4, "seed": k})

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert all(r is not None and r[0] == 200 for r in results), results
    assert all(len(r[1]["images"]) == 4 for r in results)
    # one model job at a time: the last one waited while the others ran (each takes ≥ 50 ms
    # here; the in-process queue test below checks the order exactly)
    assert max(r[1]["queued_seconds"] for r in results) > 0
    _, info = call(server["url"] + "/api/info")
    assert info["waiting"] == 0


def test_continue_speech_returns_prompt_and_continuation(server):
    x = speechlike(2.0, 44100, seed=3)
    stereo = wav_bytes(np.stack([x, 0.5 * x], 1), 44100)
    status, out = call(server["url"] + "/api/continue_speech", stereo,
                       "name=prompt.wav&prompt_seconds=1.5&max_seconds=1&min_seconds=0.5&seed=0")
    assert status == 200, out
    prompt, sr = sf.read(io.BytesIO(from_data_url(out["prompt_audio"], "audio/wav")))
    assert sr == 16000 and abs(len(prompt) / sr - 1.5) < 0.01  # cut, resampled, mono
    assert any("downmixed" in n for n in out["notes"])
    assert any("resampled from 44100 Hz" in n for n in out["notes"])
    assert any("its first 1.5 s are the prompt" in n for n in out["notes"])
    full, sr = sf.read(io.BytesIO(from_data_url(out["output_audio"], "audio/wav")))
    assert abs(len(full) / sr - out["handover_s"] - out["continuation_s"]) < 0.02
    assert 0.25 <= out["continuation_s"] <= 1.0 + 0.05  # min_seconds held <eoa> back
    assert png_of(out["spectrogram"]).size[1] == 160
    if shutil.which("pocketsphinx_batch"):
        assert isinstance(out["transcript"], str)


def test_speech_tokenizer_units_bitrate_and_both_decoders(server):
    status, out = call(server["url"] + "/api/speech_tokenizer",
                       wav_bytes(speechlike(1.0, 16000, seed=1), 16000), "name=a.wav")
    assert status == 200, out
    assert out["frames"] == len(out["units"]) == round(out["frame_rate"] * 1.0)
    assert out["bitrate"] == pytest.approx(
        out["frame_rate"] * out["depth"] * math.log2(out["codebook_size"]), abs=0.1)
    assert png_of(out["strip"]).size[0] >= out["frames"]
    if server["tiny"]:
        assert set(out["resynthesis"]) == {"griffin_lim", "learned"}
    for r in out["resynthesis"].values():
        wav, sr = sf.read(io.BytesIO(from_data_url(r["audio"], "audio/wav")))
        assert sr == 16000 and abs(len(wav) - 16000) <= 320


def test_an_hour_long_upload_is_cut_with_a_message(server):
    hour = np.zeros(8000 * 3600, dtype=np.float32)  # 1 h at 8 kHz, 8-bit: 28.8 MB
    hour[: 8000 * 10] = speechlike(10.0, 8000, seed=2)
    status, out = call(server["url"] + "/api/speech_tokenizer", wav_bytes(hour, 8000, "PCM_U8"),
                       "name=hour.wav")
    assert status == 200, out
    assert f"hour.wav is 3,600.0 s long: cut to its first {MAX_UPLOAD_SECONDS} s" in out["notes"][0]
    wav, sr = sf.read(io.BytesIO(from_data_url(out["input_audio"], "audio/wav")))
    assert len(wav) == MAX_UPLOAD_SECONDS * sr


def test_an_upload_over_the_size_limit_is_refused(server):
    status, out = call(server["url"] + "/api/speech_tokenizer",
                       b"\0" * (MAX_UPLOAD_MB * 2**20 + 1), "name=big.wav")
    assert status == 413 and f"limit of {MAX_UPLOAD_MB} MB" in out["error"]


@pytest.mark.parametrize("endpoint", ["continue_speech", "speech_tokenizer", "image_tokenizer"])
@pytest.mark.parametrize("payload, message", [
    (b"RIFF\x24\x00\x00\x00WAVEfmt garbage that is not audio", "broken.wav: cannot"),
    (b"", "broken.wav: the file is empty"),
])
def test_corrupt_uploads_are_messages_naming_the_file(server, endpoint, payload, message):
    status, out = call(server["url"] + f"/api/{endpoint}", payload, "name=broken.wav")
    assert status == 400 and message in out["error"], out
    assert "Traceback" not in out["error"]


@pytest.mark.parametrize("mode, size", [("RGBA", (37, 23)), ("P", (20, 50)), ("L", (64, 64)),
                                        ("I;16", (16, 16)), ("CMYK", (30, 30))])
def test_image_tokenizer_takes_any_mode_and_size(server, mode, size):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    img = img.convert(mode) if mode != "I;16" else Image.fromarray(
        rng.integers(0, 65535, (size[1], size[0])).astype(np.uint16))  # 16-bit greyscale
    buf = io.BytesIO()
    img.save(buf, format="TIFF" if mode == "CMYK" else "PNG")
    status, out = call(server["url"] + "/api/image_tokenizer", buf.getvalue(), "name=x")
    assert status == 200, out
    res = out["resolution"]
    target, recon = png_of(out["input"]), png_of(out["reconstruction"])
    assert target.size == recon.size == (res, res)
    assert out["grid_size"] == [len(out["codes"]), len(out["codes"][0])]
    # the PSNR shown is the reconstruction's against the (resized, cropped) input
    a = np.asarray(target, dtype=np.float64) / 255
    b = np.asarray(recon, dtype=np.float64) / 255
    assert out["psnr"] == pytest.approx(10 * np.log10(1 / ((a - b) ** 2).mean()), abs=0.3)
    assert (size == (res, res)) == (not out["notes"])


def test_export_space_runs_the_same_app(server, tmp_path):
    space = tmp_path / "space"
    done = subprocess.run([sys.executable, "-m", "lm.cli", "serve", "--model",
                           str(server["bundle"]), "--export-space", str(space)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    front = (space / "README.md").read_text().split("---")[1]
    assert "sdk: docker" in front and "app_port: 7860" in front
    assert (space / "bundle" / "config.json").exists() and (space / "lm" / "serve").is_dir()
    assert "torch" in (space / "requirements.txt").read_text()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"PORT": str(port), "HOST": "127.0.0.1", "PYTHONPATH": str(space)}
    proc = start_server([sys.executable, "app.py"], cwd=space, env=env, url=url)
    try:
        _, info = call(url + "/api/info")
        assert info["bundle"] == "bundle" and info["image"]
        status, out = call(url + "/api/text_to_image", {"caption": "the letter a",
                                                        "num_images": 1})
        assert status == 200 and len(out["images"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    again = subprocess.run([sys.executable, "-m", "lm.cli", "serve", "--model",
                            str(server["bundle"]), "--export-space", str(space)],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "not empty" in again.stderr
    hub = tmp_path / "hub_space"
    subprocess.run([sys.executable, "-m", "lm.cli", "serve", "--model", str(server["bundle"]),
                    "--export-space", str(hub), "--space-bundle", "user/bundle"], check=True,
                   capture_output=True)
    assert not (hub / "bundle").exists() and "'user/bundle'" in (hub / "app.py").read_text()
    assert "models:\n- user/bundle\n---" in (hub / "README.md").read_text()


def test_a_busy_port_is_a_clear_error(server):
    port = int(server["url"].rsplit(":", 1)[1])
    done = subprocess.run([sys.executable, "-m", "lm.cli", "serve", "--model",
                           str(server["bundle"]), "--port", str(port)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"127.0.0.1:{port}" in done.stderr
    assert "--port" in done.stderr


def test_a_folder_that_is_no_bundle_is_a_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lm.cli", "serve", "--model", str(tmp_path),
                           "--port", str(free_port())], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "is not an LM bundle" in done.stderr, done.stderr


# ---- the app's queue and error handling, in process --------------------------------------------
def test_the_queue_runs_one_job_at_a_time_in_arrival_order_and_refuses_past_its_limit():
    import anyio

    from lm.serve.app import JobQueue, QueueFull

    spans, refused = [], []

    def job(k):
        start = time.perf_counter()
        time.sleep(0.2)  # all six arrive (10 ms apart) while the first one runs
        spans.append((k, start, time.perf_counter()))
        return {"k": k}

    async def main():
        queue = JobQueue(max_waiting=4)

        async def ask(k):
            await anyio.sleep(0.01 * k)  # arrive in order 0, 1, 2, ...
            try:
                await queue.run(job, k)
            except QueueFull as err:
                refused.append((k, str(err)))

        async with anyio.create_task_group() as tg:
            for k in range(6):
                tg.start_soon(ask, k)

    anyio.run(main)
    assert [k for k, _, _ in spans] == [0, 1, 2, 3]  # first come, first served
    assert all(a[2] <= b[1] for a, b in zip(spans, spans[1:], strict=False))  # one at a time
    assert [k for k, _ in refused] == [4, 5] and "busy" in refused[0][1]


def test_a_bug_is_a_message_in_the_page_and_a_traceback_in_the_log(caplog):
    from starlette.testclient import TestClient

    from lm.serve.app import build_app

    class Broken:
        def info(self):
            return {}

        def text_to_image(self, **kwargs):
            raise KeyError("oops")

    client = TestClient(build_app("unused", capabilities=Broken()))
    with caplog.at_level("ERROR", logger="lm.serve"):
        r = client.post("/api/text_to_image", json={"caption": "a"})
    assert r.status_code == 500
    assert r.json()["error"].startswith("internal error (KeyError: 'oops')")
    assert "Traceback" not in r.json()["error"] and "Traceback" in caplog.text
    assert client.post("/api/text_to_image", content=b"{not json").json()["error"].startswith(
        "the request body is not JSON")
    page = client.get("/")
    assert page.status_code == 200 and 'id="tab-image-tokenizer"' in page.text
    # offline: the page and its script load nothing from another host
    for asset in ("/", "/static/app.js", "/static/style.css"):
        text = client.get(asset).text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, asset


def test_a_speech_only_bundle_serves_the_speech_tabs_and_says_why_not_images(tmp_path,
                                                                             tiny_tokenizer):
    from starlette.testclient import TestClient

    from lm.serve.app import build_app

    bundle = make_bundle(tmp_path / "speech_only", tiny_tokenizer, None, config=SERVE_LM)
    client = TestClient(build_app(bundle))
    info = client.get("/api/info").json()
    assert info["speech"] and not info["image"] and not info["maskgit"]
    assert "image_tokenizer" in info["missing"]["image"]
    r = client.post("/api/text_to_image", json={"caption": "the letter a"})
    assert r.status_code == 400 and "cannot do that" in r.json()["error"]
    r = client.post("/api/speech_tokenizer?name=a.wav",
                    content=wav_bytes(speechlike(0.5, 16000), 16000))
    assert r.status_code == 200 and set(r.json()["resynthesis"]) == {"griffin_lim"}
