"""Training throughput of `lm train`'s step against a bare transformers loop, padding with and
without packing, and FLOPs per token against the machine's measured matmul peak.

Data: the demo's pre-tokenised codes (`make demo` writes runs/demo/codes; or --codes DIR),
the demo's LM config (recipes/builtin/lm.yaml), the demo's task mixture.

  ours   one step of lm.train: PackedBatches (mixture → formats → packing → 4-D block-diagonal
         mask) + forward + per-modality weighted loss + backward + AdamW step
  bare   the same model, optimiser and packed input_ids, but transformers' own loop:
         `model(input_ids, labels=input_ids).loss.backward(); opt.step()` (default causal mask,
         one loss), with the batch built beforehand (no data work timed)
Tokens/s counts every block position (padding included) for both. Padding share: the demo
batches packed into blocks, against the same samples one per row, padded to the longest.
FLOPs/token ≈ 6·N (weights incl. the d × V output projection, forward + backward; Kaplan et
al. 2020) + 12·L·d·T_ctx (attention scores); the peak is a timed fp32 2048² matmul.

    .venv/bin/python benchmarks/bench_lm_train.py [--codes runs/demo/codes] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from demo_lm_data import demo_lm_data
from timing import matmul_peak, median_seconds

from lm.data import PackedBatches
from lm.loss import modality_weighted_loss
from lm.model import new_lm

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codes", default=str(ROOT / "runs/demo/codes"))
    p.add_argument("--config", default=str(ROOT / "recipes/builtin/lm.yaml"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args(argv)
    codes = Path(args.codes)
    if not (codes / "speech" / "pretokenized.json").exists():
        print(f"{codes}: no pre-tokenised demo codes; run `make demo` first (or pass --codes)")
        return 2
    torch.manual_seed(0)
    model_cfg, cfg, vocab, sources = demo_lm_data(codes, args.config)
    batches = PackedBatches(sources, cfg.task_weights, cfg.block_size, cfg.samples_per_step)
    model = new_lm(model_cfg, len(vocab), vocab.pad_id, vocab.bos_id, vocab.eos_id).train()
    model.config._attn_implementation = "sdpa"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def ours():  # builds step 0's batch every time: the same positions as `bare`, data included
        b = batches(0)
        logits = model(input_ids=b["input_ids"], position_ids=b["position_ids"],
                       attention_mask=b["attention_mask"]).logits
        loss, _ = modality_weighted_loss(logits, b["labels"], b["modality"], cfg.loss_weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    fixed = batches(0)["input_ids"]

    def bare():
        out = model(input_ids=fixed, labels=fixed)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    tokens = fixed.numel()
    t_ours, t_bare = median_seconds([ours, bare], args.repeats, args.warmup)
    # padding: the same samples packed vs one per row
    packed_pad, row_pad = [], []
    for s in range(20):
        b = batches(1000 + s)
        packed_pad.append(float((b["segment_ids"] == 0).float().mean()))
        picks = batches.mixture.draw(1000 + s, cfg.samples_per_step)
        lens = [len(sources.sample(t, i, 1000 + s)) for _, (t, i) in picks]
        row_pad.append(1 - sum(lens) / (len(lens) * max(lens)))
    n_params = sum(q.numel() for q in model.parameters())
    n_emb = model.get_input_embeddings().weight.numel()
    # every weight once (the tied d × V matrix counts as the output projection; the embedding
    # lookup itself is free), plus attention scores over the block
    head = 0 if model.config.tie_word_embeddings else n_emb  # untied: lookup table not counted
    flops_token = 6 * (n_params - head) + \
        12 * model_cfg.num_layers * model_cfg.hidden_size * cfg.block_size
    peak = matmul_peak()
    achieved = flops_token * tokens / t_ours
    print(f"LM {n_params / 1e6:.2f}M parameters ({model_cfg.num_layers} layers, "
          f"{model_cfg.hidden_size} wide), block {cfg.block_size}, global batch "
          f"{cfg.samples_per_step} samples = {tokens} positions; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; medians of {args.repeats}\n")
    print(f"{'':34} {'tokens/s':>10}")
    print(f"{'ours (lm.train step, data incl.)':34} {tokens / t_ours:10.0f}")
    print(f"{'bare transformers loop':34} {tokens / t_bare:10.0f}")
    print(f"{'ratio ours / bare':34} {t_bare / t_ours:10.2f}\n")
    print(f"padding share: packed {100 * sum(packed_pad) / 20:.1f} %, one sample per row "
          f"{100 * sum(row_pad) / 20:.1f} %")
    print(f"FLOPs/token ≈ {flops_token / 1e6:.1f} M; achieved {achieved / 1e9:.1f} GFLOP/s = "
          f"{100 * achieved / peak:.1f} % of the measured fp32 matmul peak "
          f"{peak / 1e9:.0f} GFLOP/s")
    bf16 = matmul_peak(dtype=torch.bfloat16)  # what the same cores reach in bf16
    print(f"(the 2048² bf16 matmul peak on these cores: {bf16 / 1e9:.0f} GFLOP/s; the LM's bf16 "
          "step: benchmarks/bench_precision.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
