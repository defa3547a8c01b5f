"""How long the demo LM continues real recordings, with and without `min_seconds`.

Each of --files recordings drawn (seeded) from --data is given whole (up to --prompt-seconds)
as the prompt; the continuation may run to --max-seconds. A whole utterance ends in silence,
after which the LM tends to end the utterance at once: the table shows how often the
continuation is empty and its median length for each --min-seconds value.

    .venv/bin/python benchmarks/continuation_length.py --model runs/demo/bundle \\
        --data recipes/builtin/data/real_speech_en_female
"""

from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="runs/demo/bundle", help="bundle folder")
    p.add_argument("--data", required=True, help="folder of recordings (searched recursively)")
    p.add_argument("--files", type=int, default=20, help="recordings drawn")
    p.add_argument("--min-seconds", type=float, nargs="+", default=[0.0, 1.0])
    p.add_argument("--prompt-seconds", type=float, default=3.0)
    p.add_argument("--max-seconds", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1, help="which recordings are drawn")
    args = p.parse_args()

    from lm.pipelines import SpeechContinuation
    from speechtok.speech.io import list_audio_files, load_audio

    pipe = SpeechContinuation.from_pretrained(args.model)
    rate = pipe.speech_tokenizer.frame_rate
    files = list_audio_files(Path(args.data))
    files = random.Random(args.seed).sample(files, min(args.files, len(files)))
    print(f"{len(files)} recordings of {args.data}, prompt ≤ {args.prompt_seconds:g} s, "
          f"continuation ≤ {args.max_seconds:g} s, the bundle's sampling, seed 0\n")
    print("| min_seconds | empty continuations | median s | mean s |")
    print("|---:|---:|---:|---:|")
    for minimum in args.min_seconds:
        lengths = []
        for f in files:
            out = pipe(load_audio(f, 16000), 16000, prompt_seconds=args.prompt_seconds,
                       max_seconds=args.max_seconds, min_seconds=minimum, seed=0)
            lengths.append(float(out.durations[0].sum()) / rate)
        print(f"| {minimum:g} | {sum(x == 0 for x in lengths)} of {len(files)} | "
              f"{statistics.median(lengths):.2f} | {statistics.mean(lengths):.2f} |")


if __name__ == "__main__":
    main()
