"""Peak memory of hostile inputs: each runs in a fresh process (`speechtok encode` on small
files that once asked for gigabytes; `lm serve` fed a 50 MB JSON body and four 400 MB uploads
at once), and the table gives the process's peak resident memory (ru_maxrss / VmHWM), its exit
status and the last line it printed.

    .venv/bin/python benchmarks/bench_hostile.py [--root CHECKOUT] [--skip-serve]

`--root` runs the same inputs against another checkout of the project (e.g. a `git worktree`
of an older commit) for a before/after table; its own .venv is not needed, only its sources.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def run(cmd: list[str], root: Path) -> tuple[float, int, str]:
    """(peak RSS in MB, exit status, last output line) of `cmd` with `root` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=root)
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    last = (out.strip().splitlines() or [""])[-1][:110]
    return usage.ru_maxrss / 1024, proc.returncode, last


def make_inputs(folder: Path) -> dict[str, Path]:
    import numpy as np
    import soundfile as sf
    from PIL import Image

    from speechtok.image import ImageTokenizer, ImageTokenizerConfig
    from speechtok.speech import SpeechTokenizer, SpeechTokenizerConfig

    # random weights at the default sizes: what costs memory is the input's handling
    SpeechTokenizer(SpeechTokenizerConfig()).save_pretrained(folder / "speech_tok")
    ImageTokenizer(ImageTokenizerConfig()).save_pretrained(folder / "image_tok")
    rng = np.random.default_rng(0)
    for rate in (16001, 44101):
        sf.write(folder / f"odd_{rate}.wav", 0.1 * rng.standard_normal(rate), rate)
    Image.new("1", (1_000_000, 1)).save(folder / "line.png")
    return {"speech_tok": folder / "speech_tok", "image_tok": folder / "image_tok"}


def encode_cases(folder: Path) -> list[tuple[str, list[str]]]:
    enc = [PY, "-m", "speechtok.cli", "encode", "--device", "cpu", "--tokenizer"]
    sizes = {p.name: f"{p.stat().st_size:,} B" for p in folder.iterdir() if p.is_file()}
    return [
        (f"speechtok encode, {sizes['odd_16001.wav']} WAV at 16,001 Hz",
         [*enc, str(folder / "speech_tok"), str(folder / "odd_16001.wav")]),
        (f"speechtok encode, {sizes['odd_44101.wav']} WAV at 44,101 Hz",
         [*enc, str(folder / "speech_tok"), str(folder / "odd_44101.wav")]),
        (f"speechtok encode, {sizes['line.png']} 1-bit PNG of 1,000,000 × 1",
         [*enc, str(folder / "image_tok"), str(folder / "line.png")]),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve_case(folder: Path, root: Path) -> list[tuple[str, float, int, str]]:
    """`lm serve` on a tiny random bundle: a 50 MB JSON body, then four 400 MB uploads at once,
    then /api/info; the server's peak RSS after each."""
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import make_bundle, tiny_image_tokenizer

    bundle = make_bundle(folder / "bundle", None, tiny_image_tokenizer())
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(root)}
    server = subprocess.Popen([PY, "-m", "lm.cli", "serve", "--model", str(bundle), "--port",
                               str(port), "--device", "cpu", "--max-upload-mb", "1024"],
                              env=env, cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/api/info", timeout=2)
                break
            except OSError:
                time.sleep(0.5)

        def post(path: str, body: bytes, results: list):
            req = urllib.request.Request(url + path, data=body, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=600) as r:
                    results.append(r.status)
            except urllib.error.HTTPError as err:
                results.append(err.code)
            except OSError as err:
                results.append(type(err).__name__)

        got: list = []
        post("/api/text_to_image", json.dumps({"caption": "a" * 50_000_000}).encode(), got)
        rows.append(("lm serve, a 50 MB JSON body", vm_hwm(server.pid), server.poll() or 0,
                     f"HTTP {got[0]}"))
        upload = b"\0" * (400 * 2**20)
        got = []
        threads = [threading.Thread(target=post, args=("/api/image_tokenizer", upload, got))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        del upload
        info = urllib.request.urlopen(url + "/api/info", timeout=10).status
        rows.append(("lm serve, four 400 MB uploads at once", vm_hwm(server.pid),
                     server.poll() or 0, f"HTTP {sorted(map(str, got))}; /api/info {info}"))
    finally:
        server.terminate()
        server.wait()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(ROOT), help="checkout whose code runs (default: this)")
    p.add_argument("--skip-serve", action="store_true", help="only the encode cases")
    args = p.parse_args()
    root = Path(args.root).resolve()
    with tempfile.TemporaryDirectory(prefix="hostile_") as tmp:
        folder = Path(tmp)
        make_inputs(folder)
        rows = [(name, *run(cmd, root)) for name, cmd in encode_cases(folder)]
        if not args.skip_serve:
            rows += serve_case(folder, root)
    print(f"code: {root}; peak resident memory of the process (MB); "
          f"this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print("| input | peak RSS (MB) | exit | last line |\n|---|---|---|---|")
    for name, rss, code, last in rows:
        print(f"| {name} | {rss:,.0f} | {code} | {last.replace('|', '/')} |")


if __name__ == "__main__":
    main()
