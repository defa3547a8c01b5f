"""Throughput of speechtok's VectorQuantizer vs vector_quantize_pytorch.VectorQuantize.

Same setting on both sides: K=1024 codes of D=256, EMA decay 0.99, no k-means init, input
(batch, length, 256); theirs keeps its default gradient estimator (the rotation trick). Prints
medians over --repeats timed runs (ours and theirs interleaved) after --warmup untimed ones, in
vectors per second, plus the bare nearest-neighbour search (one matmul + argmax) as a floor.

    python benchmarks/bench_quantizer.py                       # full size: (16, 4096, 256)
    python benchmarks/bench_quantizer.py --batch 2 --length 256 --repeats 3   # quick check
"""

from __future__ import annotations

import argparse

import torch
from timing import median_seconds  # benchmarks/timing.py, beside this script

from speechtok.quantization import VectorQuantizer


def train_step(module, x, ours: bool):
    def step():
        inp = x.detach().requires_grad_(True)
        if ours:
            out = module(inp)
            quantized, loss = out.quantized, out.loss
        else:
            quantized, _, loss = module(inp)
        (quantized.square().mean() + loss).backward()

    return step


def eval_step(module, x, ours: bool):
    def step():
        with torch.no_grad():
            out = module(x)
            return out.codes if ours else out[1]

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--codebook-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from vector_quantize_pytorch import VectorQuantize

    torch.manual_seed(0)
    k, d = args.codebook_size, args.dim
    x = torch.randn(args.batch, args.length, d)
    n_vectors = args.batch * args.length
    ours = VectorQuantizer(d, k, ema_decay=0.99, kmeans_init=False)
    theirs = VectorQuantize(dim=d, codebook_size=k, decay=0.99, kmeans_init=False)

    rows = []
    for mode, make in (("train fwd+bwd", train_step), ("eval fwd (no_grad)", eval_step)):
        ours.train(mode.startswith("train"))
        theirs.train(mode.startswith("train"))
        t_ours, t_theirs = median_seconds([make(ours, x, True), make(theirs, x, False)],
                                          args.repeats, args.warmup)
        rows.append((mode, n_vectors / t_ours, n_vectors / t_theirs))

    embed = ours.codebook.detach()
    bias = embed.pow(2).sum(1).mul(-0.5)
    flat = x.reshape(-1, d)
    (t_floor,) = median_seconds([lambda: torch.addmm(bias, flat, embed.t()).argmax(1)],
                                args.repeats, args.warmup)

    print(f"input ({args.batch}, {args.length}, {d}), K={k}, EMA 0.99, "
          f"threads={torch.get_num_threads()}, torch {torch.__version__}; "
          f"median of {args.repeats} after {args.warmup} warm-up")
    print(f"{'case':<22}{'ours vec/s':>14}{'theirs vec/s':>14}{'ours/theirs':>13}")
    for mode, v_ours, v_theirs in rows:
        print(f"{mode:<22}{v_ours:>14,.0f}{v_theirs:>14,.0f}{v_ours / v_theirs:>12.2f}x")
    print(f"{'NN search floor':<22}{n_vectors / t_floor:>14,.0f}{'':>14}{'':>13}")


if __name__ == "__main__":
    main()
