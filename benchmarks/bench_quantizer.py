"""Throughput of speechtok's quantizers vs their vector-quantize-pytorch counterparts.

Pairs at the same shapes and settings: VQ (K codes of D, EMA 0.99, no k-means init), residual
VQ (4 stages of that VQ), FSQ and residual FSQ (levels 8·5·5·5 = 1000 codes, 4 stages),
LFQ (log2 K bits, entropy weight 0.1, commitment 0.25) and SimVQ (gradient-learned map of a
frozen codebook, rotation trick on both sides). vector-quantize-pytorch's VectorQuantize and
ResidualVQ keep their default gradient estimator (the rotation trick); ours uses the
straight-through estimator there. Their LFQ computes the entropy penalty over all 2^bits codes;
ours factorises it over bits (speechtok.quantization.binary), an upper bound of the same term.
Prints medians over --repeats timed runs (ours and theirs interleaved) after --warmup untimed
ones, in vectors per second, for training (forward + backward of the output and the loss) and
eval (no_grad forward), plus the bare nearest-neighbour search (one matmul + argmax) as a floor.

    python benchmarks/bench_quantizer.py                       # full size: (16, 4096, 256)
    python benchmarks/bench_quantizer.py --batch 2 --length 256 --repeats 3   # quick check
    python benchmarks/bench_quantizer.py --only lfq,fsq
"""

from __future__ import annotations

import argparse
import math
import warnings

import torch
from timing import median_seconds  # benchmarks/timing.py, beside this script

from speechtok.quantization import (
    FSQ,
    LookupFreeQuantizer,
    ResidualFSQ,
    ResidualVQ,
    VectorQuantizer,
)

LEVELS = (8, 5, 5, 5)
DEPTH = 4


def pairs(d: int, k: int) -> dict[str, tuple[torch.nn.Module, torch.nn.Module]]:
    """name → (ours, theirs), built with one seed."""
    import vector_quantize_pytorch as vqp

    torch.manual_seed(0)
    return {
        "vq": (VectorQuantizer(d, k, ema_decay=0.99, kmeans_init=False),
               vqp.VectorQuantize(dim=d, codebook_size=k, decay=0.99, kmeans_init=False)),
        "rvq": (ResidualVQ(DEPTH, d, k, ema_decay=0.99, kmeans_init=False),
                vqp.ResidualVQ(dim=d, num_quantizers=DEPTH, codebook_size=k, decay=0.99,
                               kmeans_init=False)),
        "fsq": (FSQ(d, LEVELS), vqp.FSQ(levels=list(LEVELS), dim=d)),
        "rfsq": (ResidualFSQ(DEPTH, d, LEVELS),
                 vqp.ResidualFSQ(levels=list(LEVELS), num_quantizers=DEPTH, dim=d)),
        "lfq": (LookupFreeQuantizer(d, int(math.log2(k)), beta=0.25, entropy_weight=0.1),
                vqp.LFQ(dim=d, codebook_size=k, entropy_loss_weight=0.1,
                        commitment_loss_weight=0.25, diversity_gamma=1.0)),
        "simvq": (VectorQuantizer(d, k, ema_decay=None, kmeans_init=False, simvq=True,
                                  rotation_trick=True, l2_normalize=False),
                  vqp.SimVQ(dim=d, codebook_size=k)),
    }


def quantized_and_loss(module, x: torch.Tensor, ours: bool):
    out = module(x)
    if ours:
        return out.quantized, out.loss, out.codes
    # vector-quantize-pytorch returns (quantized, indices[, loss(es)])
    loss = out[2].sum() if len(out) > 2 and torch.is_tensor(out[2]) else x.new_zeros(())
    return out[0], loss, out[1]


def train_step(module, x, ours: bool):
    def step():
        inp = x.detach().requires_grad_(True)
        quantized, loss, _ = quantized_and_loss(module, inp, ours)
        (quantized.square().mean() + loss).backward()

    return step


def eval_step(module, x, ours: bool):
    def step():
        with torch.no_grad():
            return quantized_and_loss(module, x, ours)[2]

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="items per batch")
    parser.add_argument("--length", type=int, default=4096, help="vectors per item")
    parser.add_argument("--dim", type=int, default=256, help="latent channels, D")
    parser.add_argument("--codebook-size", type=int, default=1024,
                        help="K (a power of 2, for LFQ's bits)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (the median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--only", default="", help="comma-separated subset of "
                        "vq,rvq,fsq,rfsq,lfq,simvq")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    k, d = args.codebook_size, args.dim
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.length, d)
    n_vectors = args.batch * args.length
    chosen = pairs(d, k)
    if args.only:
        chosen = {n: chosen[n] for n in args.only.split(",")}

    print(f"input ({args.batch}, {args.length}, {d}), K={k}, threads={torch.get_num_threads()},"
          f" torch {torch.__version__}; median of {args.repeats} after {args.warmup} warm-up")
    print(f"{'quantizer':<10}{'mode':<6}{'ours vec/s':>14}{'theirs vec/s':>14}{'ours/theirs':>13}")
    for name, (ours, theirs) in chosen.items():
        for mode, make in (("train", train_step), ("eval", eval_step)):
            ours.train(mode == "train")
            theirs.train(mode == "train")
            t_ours, t_theirs = median_seconds([make(ours, x, True), make(theirs, x, False)],
                                              args.repeats, args.warmup)
            print(f"{name:<10}{mode:<6}{n_vectors / t_ours:>14,.0f}"
                  f"{n_vectors / t_theirs:>14,.0f}{t_theirs / t_ours:>12.2f}x", flush=True)

    embed = torch.randn(k, d)
    bias = embed.pow(2).sum(1).mul(-0.5)
    flat = x.reshape(-1, d)
    (t_floor,) = median_seconds([lambda: torch.addmm(bias, flat, embed.t()).argmax(1)],
                                args.repeats, args.warmup)
    print(f"{'NN search floor (one codebook)':<30}{n_vectors / t_floor:>14,.0f}")


if __name__ == "__main__":
    main()
