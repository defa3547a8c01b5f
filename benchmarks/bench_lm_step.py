"""The demo LM's training step in the settings that decide how much it learns per second: samples
per step (the matmuls' height), precision (bf16 autocast where the CPU has it) and
torch.compile, each against the demo's previous step (16 samples, fp32 or bf16, eager).

Each setting runs `lm.train`'s own step (batch built from the mixture, forward with the packing
mask, per-modality loss, backward, clipping-free AdamW step) on the demo's codes, and reports
the median step time, samples/s and target tokens/s (label positions, padding excluded) and
the ratio of samples/s to the first row. Compiled rows run their warm-up steps first
(compilation is not in the median; its cost is printed beside them); the timed steps of
all settings are interleaved.

    .venv/bin/python benchmarks/bench_lm_step.py [--codes runs/demo/codes] [--repeats 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from demo_lm_data import demo_lm_data
from timing import median_seconds

from lm.data import PackedBatches, TaskSources
from lm.loss import modality_weighted_loss
from lm.model import LMConfig, new_lm
from lm.train import LMTrainConfig
from speechtok.training.accelerator import cpu_has_native_bf16

ROOT = Path(__file__).resolve().parents[1]


def step_fn(cfg: LMTrainConfig, model_cfg: LMConfig, sources: TaskSources, vocab,
            samples: int, bf16: bool, compiled: bool):
    torch.manual_seed(0)
    batches = PackedBatches(sources, cfg.task_weights, cfg.block_size, samples)
    model = new_lm(model_cfg, len(vocab), vocab.pad_id, vocab.bos_id, vocab.eos_id).train()
    model.config._attn_implementation = "sdpa"
    forward = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    counter = iter(range(10**9))
    targets = []

    def step():
        b = batches(next(counter))
        targets.append(int((b["labels"] >= 0).sum()))
        autocast = torch.autocast("cpu", torch.bfloat16) if bf16 else nullcontext()
        with autocast:
            logits = forward(input_ids=b["input_ids"], position_ids=b["position_ids"],
                             attention_mask=b["attention_mask"]).logits
            loss, _ = modality_weighted_loss(logits, b["labels"], b["modality"],
                                             cfg.loss_weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step, targets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codes", default=str(ROOT / "runs/demo/codes"),
                   help="pre-tokenised codes (speech/ and image/ folders of `lm tokenize`)")
    p.add_argument("--config", default=str(ROOT / "recipes/builtin/lm.yaml"),
                   help="LM config (YAML): model size, task mixture, block size")
    p.add_argument("--repeats", type=int, default=20, help="timed steps per setting")
    p.add_argument("--samples", type=int, nargs="+", default=[16, 32, 64],
                   help="samples per step to compare (the first is the reference)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    args = p.parse_args(argv)
    codes = Path(args.codes)
    if not (codes / "image" / "pretokenized.json").exists():
        print(f"{codes}: no pre-tokenised demo codes; run `make demo` first (or pass --codes)")
        return 2
    model_cfg, cfg, vocab, sources = demo_lm_data(codes, args.config)
    precisions = [False, True] if cpu_has_native_bf16() else [False]
    settings = [(n, bf16, False) for bf16 in precisions for n in args.samples]
    if not args.no_compile:
        settings += [(n, precisions[-1], True) for n in args.samples[:2]]
    print(f"LM {model_cfg.hidden_size} wide, {model_cfg.num_layers} layers, block "
          f"{cfg.block_size}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"medians of {args.repeats} steps\n")
    print(f"{'samples/step':>12} {'precision':>9} {'compiled':>8} {'step ms':>8} "
          f"{'samples/s':>9} {'tokens/s':>9} {'× first':>7}")
    steps, warm_s = [], []
    for samples, bf16, compiled in settings:
        step, targets = step_fn(cfg, model_cfg, sources, vocab, samples, bf16, compiled)
        t = time.time()
        for _ in range(3 if compiled else 2):
            step()
        warm_s.append(time.time() - t)
        targets.clear()
        steps.append((step, targets))
    # interleaved (a, b, c, a, b, c, ...): load from elsewhere hits every setting alike
    medians = median_seconds([s for s, _ in steps], args.repeats, 0)
    first = None
    for (samples, bf16, compiled), (_, targets), seconds, warm in zip(
            settings, steps, medians, warm_s, strict=True):
        rate = samples / seconds
        first = first or rate
        extra = f"  (compile + warm-up {warm:.0f} s)" if compiled else ""
        print(f"{samples:12d} {'bf16' if bf16 else 'fp32':>9} {'yes' if compiled else 'no':>8} "
              f"{1000 * seconds:8.1f} {rate:9.0f} {sum(targets) / len(targets) / seconds:9.0f} "
              f"{rate / first:7.2f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
