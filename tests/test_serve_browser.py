"""The web demo in a real browser: Debian's chromium, headless, driven by Playwright (no browser
download), against the real `lm serve` (tests/serve_helpers.py). Every tab is used as a person
would; a screenshot of each is written to $LM_SERVE_SCREENSHOTS (default
runs/screenshots/serve)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import speechlike
from PIL import Image
from serve_helpers import (
    ROOT,
    call,
    served,  # noqa: F401 (the `server` fixture)
)

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream"]  # a fake microphone for Record


def chromium_path() -> str | None:
    return next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p), None)


@pytest.fixture  # closed after its test: Playwright's sync API holds an event loop until then
def browser_page(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium: `make system-deps` installs Debian's chromium as root")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requested = []
        page.on("request", lambda r: requested.append(r.url))
        yield page, requested
        browser.close()


def screenshot(page, name: str) -> None:
    folder = Path(os.environ.get("LM_SERVE_SCREENSHOTS", ROOT / "runs/screenshots/serve"))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_every_tab_works_in_a_real_browser(server, browser_page, tmp_path):
    page, requested = browser_page
    url = server["url"]
    page.goto(url + "/")
    page.wait_for_function("document.getElementById('bundle-info').textContent"
                           ".startsWith('bundle')")
    _, info = call(url + "/api/info")

    # 1. text to image: an empty caption is a message; a caption gives images of the right size
    page.fill("#caption", "")
    page.click("#generate")
    assert "empty" in page.inner_text("#error-text-to-image")
    page.fill("#caption", "DejaVu Sans, the uppercase letter G")  # the demo corpus' wording
    page.fill("#num-images", "4")
    page.fill("#t2i-temperature", "0.7")  # four different draws (greedy would repeat one)
    page.click("#generate")
    page.wait_for_selector("#images img.generated >> nth=3")
    page.wait_for_function("[...document.querySelectorAll('#images img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    sizes = page.eval_on_selector_all("#images img", "imgs => imgs.map(i => [i.naturalWidth, "
                                      "i.naturalHeight])")
    assert sizes == [[info["resolution"]] * 2] * 4
    assert page.is_hidden("#error-text-to-image")
    status = page.inner_text("#status-text-to-image")
    assert "took" in status and "temperature 0.7" in status
    screenshot(page, "text_to_image")

    # 2. continue speech: upload a WAV, get the prompt and the continuation back as audio
    prompt = tmp_path / "prompt.wav"
    sf.write(prompt, speechlike(2.0, 22050, seed=4), 22050)
    page.click("#tab-continue-speech")
    page.fill("#max-seconds", "1.5")
    page.set_input_files("#speech-file", str(prompt))
    page.click("#continue")
    page.wait_for_selector("#continue-result, #error-continue-speech:not([hidden])",
                           state="visible")
    assert page.is_hidden("#error-continue-speech"), page.inner_text("#error-continue-speech")
    seconds = page.eval_on_selector("#prompt-audio", "a => new Promise(ok => a.readyState >= 1 ? "
                                    "ok(a.duration) : a.addEventListener('loadedmetadata', () => "
                                    "ok(a.duration)))")
    assert abs(seconds - 2.0) < 0.05  # the whole 2 s upload is shorter than the 3 s prompt
    assert page.get_attribute("#continue-spectrogram", "src").startswith("data:image/png")
    assert page.get_attribute("#output-audio", "src").startswith("data:audio/wav")
    screenshot(page, "continue_speech")

    # a corrupt upload is a message in the page; recording through the (fake) microphone works
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    page.set_input_files("#speech-file", str(broken))
    page.click("#continue")
    page.wait_for_selector("#error-continue-speech", state="visible")
    assert "broken.wav: cannot decode" in page.inner_text("#error-continue-speech")
    page.set_input_files("#speech-file", [])
    page.click("#panel-continue-speech button.record")
    page.wait_for_timeout(1200)
    page.click("#panel-continue-speech button.record")
    page.wait_for_function("document.getElementById('recording-continue-speech').textContent"
                           ".includes('ready')")
    page.evaluate("document.getElementById('prompt-audio').removeAttribute('src')")
    page.click("#continue")
    page.wait_for_function("document.getElementById('status-continue-speech').textContent"
                           ".includes('took') || !document.getElementById("
                           "'error-continue-speech').hidden")
    assert page.is_hidden("#error-continue-speech"), page.inner_text("#error-continue-speech")
    recorded = page.eval_on_selector("#prompt-audio", "a => new Promise(ok => a.readyState >= 1 "
                                     "? ok(a.duration) : a.addEventListener('loadedmetadata', "
                                     "() => ok(a.duration)))")
    assert 0.6 < recorded < 2.5  # the ~1.2 s recording was the prompt, not the earlier file

    # 3. speech tokenizer: units strip, bitrate, resynthesis (both decoders when present)
    page.click("#tab-speech-tokenizer")
    page.set_input_files("#units-file", str(prompt))
    page.click("#tokenize-speech")
    page.wait_for_selector("#units-result", state="visible")
    assert "bit/s" in page.inner_text("#units-caption")
    decoders = page.eval_on_selector_all("#resynthesis figure", "f => f.map(x => x.id)")
    assert "resynthesis-griffin_lim" in decoders
    if info["learned_vocoder"]:
        assert "resynthesis-learned" in decoders
    screenshot(page, "speech_tokenizer")

    # 4. image tokenizer: an RGBA image of an odd size → code grid, reconstruction, PSNR
    image = tmp_path / "odd.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (41, 29, 4), dtype=np.uint8),
                    "RGBA").save(image)
    page.click("#tab-image-tokenizer")
    page.set_input_files("#image-file", str(image))
    page.click("#tokenize-image")
    page.wait_for_selector("#image-result", state="visible")
    assert "PSNR" in page.inner_text("#psnr") and "dB" in page.inner_text("#psnr")
    width = page.eval_on_selector("#image-reconstruction",
                                  "i => i.complete ? i.naturalWidth : new Promise(ok => "
                                  "i.addEventListener('load', () => ok(i.naturalWidth)))")
    assert width == info["resolution"]
    screenshot(page, "image_tokenizer")

    # offline: everything the page loaded came from the server (or was made in the page)
    outside = [u for u in requested if not u.startswith((url, "data:", "blob:"))]
    assert not outside, outside
