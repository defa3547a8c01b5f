"""Latency of the web demo (`lm serve`) on a bundle, through its HTTP API, as a user sees it.

Starts the app in this process (uvicorn on a free local port, one worker thread for the
models, as `lm serve` does), then times each endpoint over --repeats calls after one warm-up
call: text → --images images (causal; MaskGIT too when the bundle has it), continuing a
--prompt-seconds prompt by --continue-seconds, the speech tokenizer on --audio-seconds of audio,
the image tokenizer on one photo-sized image. Then --concurrent caption requests at once:
when each finished and how long it queued. Prints a table (medians; name the CPU beside it).

    .venv/bin/python benchmarks/bench_serve.py --model runs/demo/bundle
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import threading
import time
import urllib.request

import numpy as np
import soundfile as sf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes, json_body: bool = False) -> dict:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json" if json_body else "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=600) as r:
        return json.loads(r.read())


def speechlike(seconds: float, sr: int = 16000) -> bytes:
    """A vowel-ish test signal (harmonics with a wandering pitch) as a WAV file."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(120 + 30 * np.sin(2 * np.pi * t)) / sr
    wav = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(6 * t) ** 2)
    buf = io.BytesIO()
    sf.write(buf, (0.2 * wav + 0.01 * rng.standard_normal(len(t))).astype(np.float32), sr,
             format="WAV")
    return buf.getvalue()


def photo(size=(640, 480)) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, size[0])[None, :, None] * np.linspace(0, 1, size[1])[:, None, None]
    img = (255 * (0.6 * x + 0.4 * rng.random((size[1], size[0], 3)))).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG")
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="runs/demo/bundle",
                   help="bundle folder (default: the one `make demo` writes)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per endpoint")
    p.add_argument("--images", type=int, default=4, help="images per caption request")
    p.add_argument("--prompt-seconds", type=float, default=3.0)
    p.add_argument("--continue-seconds", type=float, default=5.0)
    p.add_argument("--audio-seconds", type=float, default=5.0)
    p.add_argument("--concurrent", type=int, default=4, help="caption requests sent at once")
    p.add_argument("--caption", default="the letter a")
    args = p.parse_args()

    if not os.path.isfile(os.path.join(args.model, "config.json")):
        p.error(f"{args.model} is not a bundle: run `make demo` first or give --model")
    import torch
    import uvicorn

    from lm.serve import build_app

    app = build_app(args.model)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.1)
    base = f"http://127.0.0.1:{port}/api"
    info = json.loads(urllib.request.urlopen(base + "/info").read())

    caption = json.dumps({"caption": args.caption, "num_images": args.images}).encode()
    calls = {}
    if info["image"]:
        calls[f"text → {args.images} images (causal)"] = \
            lambda: post(base + "/text_to_image", caption, True)
        if info["maskgit"]:
            body = json.dumps({"caption": args.caption, "num_images": args.images,
                               "decoding": "maskgit"}).encode()
            calls[f"text → {args.images} images (MaskGIT, 8 steps)"] = \
                lambda: post(base + "/text_to_image", body, True)
        image = photo()
        calls["image tokenizer (640×480 JPEG)"] = lambda: post(base + "/image_tokenizer",
                                                               image)
    if info["speech"]:
        prompt = speechlike(args.prompt_seconds + 2)
        query = f"prompt_seconds={args.prompt_seconds}&max_seconds={args.continue_seconds}"
        calls[f"continue {args.prompt_seconds:g} s by ≤ {args.continue_seconds:g} s"
              f"{' + ASR' if info['recogniser'] else ''}"] = \
            lambda: post(base + "/continue_speech?" + query, prompt)
        audio = speechlike(args.audio_seconds)
        decoders = "GL + learned" if info["learned_vocoder"] else "GL"
        calls[f"speech tokenizer ({args.audio_seconds:g} s, {decoders})"] = \
            lambda: post(base + "/speech_tokenizer", audio)

    print(f"bundle {args.model}, device {info['device']}, torch threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} CPUs; median of {args.repeats} "
          "after 1 warm-up\n")
    print(f"| {'request':<40} | median s | model s |")
    print(f"|{'-' * 42}|---------:|--------:|")
    for name, fn in calls.items():
        fn()
        walls, computes = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = fn()
            walls.append(time.perf_counter() - start)
            computes.append(out["seconds"])
        print(f"| {name:<40} | {statistics.median(walls):8.2f} | "
              f"{statistics.median(computes):7.2f} |")

    if info["image"] and args.concurrent:
        done, barrier = [None] * args.concurrent, threading.Barrier(args.concurrent)

        def ask(k):
            barrier.wait()
            start = time.perf_counter()
            out = post(base + "/text_to_image", json.dumps(
                {"caption": args.caption, "num_images": args.images, "seed": k}).encode(), True)
            done[k] = (time.perf_counter() - start, out["queued_seconds"], len(out["images"]))

        threads = [threading.Thread(target=ask, args=(k,)) for k in range(args.concurrent)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(f"\n{args.concurrent} caption requests at once (each {args.images} images):")
        print("| request | finished after s | queued s | images |")
        print("|--------:|-----------------:|---------:|-------:|")
        for k, (wall, queued, n) in sorted(enumerate(done), key=lambda kv: kv[1][0]):
            print(f"| {k} | {wall:.2f} | {queued:.2f} | {n} |")
    server.should_exit = True


if __name__ == "__main__":
    main()
