"""Does the data loader keep up? Loader throughput with 0, 1 and 2 workers against what the
tokenizer trainers consume, and the share of their steps spent waiting for data.

1. Loader alone: the batches of the built-in recipe's settings (speech: 16 crops of 1.28 s;
   images: 16 at 32 px) drawn from a folder of 2,000 distinct files (FLAC clips of 1-3 s at
   16 kHz; 512×384 JPEGs), with the cache off (--cache_mb 0, as for a corpus far larger than
   the cache), every file decoded each time it is drawn.
2. Trainer: `speechtok train speech|image` (the recipe's configs) on the same folders with the
   cache off, its steps per second and the share of step time waiting for the loader, as the
   training history records them (speechtok.training.loop).

    .venv/bin/python benchmarks/bench_data.py [--work /tmp/speechtok-bench] [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from synthetic_folders import audio_folder, image_folder

from speechtok import ImageTokenizerConfig, SpeechTokenizerConfig
from speechtok.image.data import open_image_splits
from speechtok.image.train import ImageTrainConfig, train_image
from speechtok.speech.data import open_splits
from speechtok.speech.train import SpeechTrainConfig, train_speech
from speechtok.training.batches import step_batches
from speechtok.training.config import build_configs

ROOT = Path(__file__).resolve().parents[1]


def loader_rate(make_batch, workers: int, batches: int) -> float:
    """Batches per second of the loader alone (after its first batch: workers start up)."""
    it = step_batches(make_batch, 0, batches + 1, workers)
    it.take(0)
    t0 = time.perf_counter()
    for s in range(1, batches + 1):
        it.take(s)
    return batches / (time.perf_counter() - t0)


def trainer_rate(kind: str, data: Path, out: Path, workers: int, steps: int) -> tuple[float, float]:
    """(steps/s, share of step time waiting for data) of a recipe-config training run."""
    if kind == "speech":
        model_cfg, cfg = build_configs([SpeechTokenizerConfig, SpeechTrainConfig],
                                       ROOT / "recipes/builtin/speech_tokenizer.yaml",
                                       {"steps": steps, "eval_every": steps, "eval_max_items": 8,
                                        "save_every": steps, "num_workers": workers,
                                        "cache_mb": 0})
        train_speech(data, out, model_cfg, cfg)
    else:
        model_cfg, cfg = build_configs([ImageTokenizerConfig, ImageTrainConfig],
                                       ROOT / "recipes/builtin/image_tokenizer.yaml",
                                       {"steps": steps, "eval_every": steps, "eval_max_items": 16,
                                        "save_every": steps, "num_workers": workers,
                                        "cache_mb": 0, "disc_start": steps})
        train_image(data, out, model_cfg, cfg)
    last = json.loads((out / "train_history.json").read_text())[-1]
    return last["steps_per_second"], last["data_wait"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "speechtok-bench"))
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--batches", type=int, default=60, help="batches timed per loader setting")
    p.add_argument("--steps", type=int, default=60, help="training steps per trainer setting")
    p.add_argument("--workers", default="0,1,2")
    args = p.parse_args(argv)
    work = Path(args.work)
    workers = [int(w) for w in args.workers.split(",")]
    speech_dir = audio_folder(work / f"speech{args.files}", args.files)
    image_dir = image_folder(work / f"image{args.files}", args.files)
    speech, _ = open_splits(speech_dir, 16000)
    images, _ = open_image_splits(image_dir, 32)
    segment = 20480  # 1.28 s at 16 kHz, the recipe's crop
    makers = {"speech": partial(speech.batch, batch_size=16, segment=segment, seed=0),
              "image": partial(images.batch, batch_size=16, seed=0)}
    per_batch = {"speech": 16 * segment / 16000 / 3600, "image": 16}  # hours of audio; images
    unit = {"speech": "h audio/s", "image": "images/s"}
    print(f"cores: {len(os.sched_getaffinity(0))}, torch threads: {torch.get_num_threads()}\n")
    print("| model | workers | loader batches/s | loader throughput | trainer steps/s | "
          "trainer waits for data | loader ÷ trainer |\n|---|---|---|---|---|---|---|")
    for kind, data in (("speech", speech_dir), ("image", image_dir)):
        for w in workers:
            rate = loader_rate(makers[kind], w, args.batches)
            sps, wait = trainer_rate(kind, data, work / f"data_{kind}_w{w}", w, args.steps)
            amount = f"{rate * per_batch[kind]:.3g} {unit[kind]}"
            print(f"| {kind} | {w} | {rate:.1f} | {amount} | "
                  f"{sps:.2f} | {wait:.1%} | {rate / sps:.1f}× |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
