"""Tokens per second of speech under each tokenizer layout the LM can read, and what that costs
the LM: the demo LM's training step (forward, backward, AdamW; bf16 autocast where the CPU has
it) on batches of 8 samples of 10 s of speech each, interleaved medians.

    ours        50 Hz units, one codebook, deduplicated (GSLM): the rate measured on the
                demo's codes when runs/demo/codes exists, else 50 tokens/s
    Mimi        12.5 Hz × 8 codebooks (Défossez et al. 2024, Moshi's tokenizer)
    EnCodec     75 Hz × 8 codebooks (24 kHz at 6 kbps)
    DAC         50 Hz × 12 codebooks (16 kHz)

Several codebooks a frame are read depth-first (one LM position a code), so the sequence is
frame rate × codebooks long.

    .venv/bin/python benchmarks/bench_codec_rates.py [--codes runs/demo/codes] [--repeats 10]
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path

import torch
from timing import median_seconds

from lm.model import LMConfig, new_lm
from speechtok.tokenizer import CodeLayout
from speechtok.training.accelerator import cpu_has_native_bf16

ROOT = Path(__file__).resolve().parents[1]
SECONDS, SAMPLES = 10.0, 8


def dedup_rate(codes: Path) -> float | None:
    """Deduplicated units a second of the demo's training speech codes."""
    from lm.pretokenize import load_codes

    try:
        rows = load_codes(codes / "speech", "train")["units"]
    except (FileNotFoundError, ValueError):
        return None
    frames = sum(len(u) for u in rows)
    runs = sum(int(len(torch.unique_consecutive(torch.tensor(u)))) for u in rows)
    return 50.0 * runs / frames


def step_fn(layout: CodeLayout, tokens_per_s: float, bf16: bool):
    length = int(SECONDS * tokens_per_s)
    vocab = 1000 + layout.codebook_size * layout.depth
    torch.manual_seed(0)
    model = new_lm(LMConfig(hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=4,
                            intermediate_size=352, max_positions=max(length, 512)),
                   vocab, 0, 1, 2).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(3, vocab, (SAMPLES, length))

    def step():
        with torch.autocast("cpu", torch.bfloat16) if bf16 else nullcontext():
            loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codes", default=str(ROOT / "runs" / "demo" / "codes"))
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    measured = dedup_rate(Path(args.codes))
    layouts = [
        ("ours (50 Hz, deduplicated)", CodeLayout("speech", 512, 1, sample_rate=16000,
                                                  frame_rate=50), measured or 50.0),
        ("Mimi-shaped (12.5 Hz × 8)", CodeLayout("speech", 2048, 8, sample_rate=24000,
                                                 frame_rate=12.5), None),
        ("EnCodec 24 kHz, 6 kbps (75 Hz × 8)", CodeLayout("speech", 1024, 8, sample_rate=24000,
                                                          frame_rate=75), None),
        ("DAC 16 kHz (50 Hz × 12)", CodeLayout("speech", 1024, 12, sample_rate=16000,
                                               frame_rate=50), None),
    ]
    bf16 = cpu_has_native_bf16()
    rates = [rate or layout.tokens_per_second for _, layout, rate in layouts]
    steps = [step_fn(layout, rate, bf16) for (_, layout, _), rate in zip(layouts, rates,
                                                                            strict=True)]
    times = median_seconds(steps, args.repeats, warmup=2)
    print(f"{SAMPLES} samples × {SECONDS:g} s of speech a step, demo LM (4 × 128), "
          f"{'bf16' if bf16 else 'fp32'}, {torch.get_num_threads()} threads, median of "
          f"{args.repeats}" + ("" if measured else "; no demo codes: ours at 50 tokens/s"))
    print("| layout | tokens / s of speech | tokens / sample | step (ms) | speech s trained / s |")
    print("|---|---|---|---|---|")
    for (name, _, _), rate, t in zip(layouts, rates, times, strict=True):
        print(f"| {name} | {rate:.1f} | {int(SECONDS * rate)} | {t * 1000:.0f} | "
              f"{SAMPLES * SECONDS / t:.1f} |")


if __name__ == "__main__":
    main()
