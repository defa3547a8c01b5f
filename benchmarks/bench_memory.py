"""Peak memory of the tokenizer trainers on a small and a large folder: does it stay bounded?

Runs `speechtok train speech` and `speechtok train image` (the built-in recipe's configs) for
300 steps on folders of 200 and of 20,000 distinct files (FLAC clips of 1-3 s; 512×384 JPEGs),
with the default cache (--cache_mb) and 0 or 2 loader workers, and samples the proportional set
size (PSS: shared pages split among the processes, so workers are not double-counted) of the
trainer and its worker processes every 0.2 s. A cache that grew with the corpus would show as a
gap between the two folders; the issue's bound is 300 MB.

    .venv/bin/python benchmarks/bench_memory.py [--work /tmp/speechtok-bench] [--steps 300]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from synthetic_folders import audio_folder, image_folder

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"speech": ROOT / "recipes/builtin/speech_tokenizer.yaml",
           "image": ROOT / "recipes/builtin/image_tokenizer.yaml"}


def tree_pss_mb(proc: psutil.Process) -> float:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total / 2**20


def peak_memory(cmd: list[str], log: Path) -> tuple[float, float]:
    """(peak PSS of the process tree, seconds) of running `cmd`."""
    t0 = time.time()
    with open(log, "w") as out:
        popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        proc, peak = psutil.Process(popen.pid), 0.0
        while popen.poll() is None:
            try:
                peak = max(peak, tree_pss_mb(proc))
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
    if popen.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({popen.returncode}); see {log}")
    return peak, time.time() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "speechtok-bench"),
                   help="where the data folders are made (once) and the runs write")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--sizes", default="200,20000", help="folder sizes, comma-separated")
    p.add_argument("--workers", default="0,2", help="loader workers to try, comma-separated")
    args = p.parse_args(argv)
    work = Path(args.work)
    sizes = [int(n) for n in args.sizes.split(",")]
    folders = {(kind, n): (audio_folder if kind == "speech" else image_folder)(
        work / f"{kind}{n}", n) for kind in CONFIGS for n in sizes}
    print("| model | files | workers | peak PSS (MB) | seconds |\n|---|---|---|---|---|")
    rows = {}
    for kind in CONFIGS:
        for workers in [int(w) for w in args.workers.split(",")]:
            for n in sizes:
                out = work / f"run_{kind}{n}_w{workers}"
                cmd = [sys.executable, "-m", "speechtok.cli", "train", kind, "--data",
                       str(folders[kind, n]), "--out", str(out), "--config", str(CONFIGS[kind]),
                       "--steps", str(args.steps), "--eval_every", str(args.steps),
                       "--save_every", str(args.steps), "--eval_max_items", "32",
                       "--num_workers", str(workers)]
                if kind == "image":
                    cmd += ["--disc_start", str(args.steps)]
                rows[kind, workers, n] = peak, secs = peak_memory(cmd, work / f"{out.name}.log")
                print(f"| {kind} | {n} | {workers} | {peak:.0f} | {secs:.0f} |", flush=True)
    print()
    for kind in CONFIGS:
        for workers in [int(w) for w in args.workers.split(",")]:
            gap = rows[kind, workers, sizes[-1]][0] - rows[kind, workers, sizes[0]][0]
            print(f"{kind}, {workers} workers: {sizes[-1]} files take {gap:+.0f} MB over "
                  f"{sizes[0]} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
