"""Encode / decode speed of speechtok's ImageTokenizer vs `diffusers.VQModel`, same shape.

Both are built from the same numbers (random weights, nothing is downloaded): channels per
level (64, 128, 256, 256) → f = 8, one ResNet block per level in the encoder (two in the
decoder, as both designs do), self-attention in the mid blocks, GroupNorm with 32 groups,
64 latent channels, K = 256 codes of 8 dimensions (diffusers: `vq_embed_dim=8` after its 1×1
`quant_conv`; ours: the quantizer's 8-d l2-normalised projection).

  encode = images (B, 3, 64, 64) → code ids   (diffusers: `encode` then `quantize`'s indices)
  decode = code ids → images                  (diffusers: `quantize.get_codebook_entry` then
                                                `decode(force_not_quantize=True)`)

Prints the median of --repeats timed runs (contenders interleaved within each repeat) after
--warmup untimed ones, as images per second, and the ratio ours / diffusers.

    .venv/bin/python benchmarks/bench_image_tokenizer.py                 # 64 px, batch 4
    .venv/bin/python benchmarks/bench_image_tokenizer.py --repeats 1 --warmup 0   # quick check
"""

from __future__ import annotations

import argparse
import sys

import torch
from timing import median_seconds  # benchmarks/timing.py, beside this script

from speechtok.image import ImageTokenizer, ImageTokenizerConfig

CHANNELS = (64, 128, 256, 256)


def build_ours(resolution: int, k: int) -> ImageTokenizer:
    cfg = ImageTokenizerConfig(resolution=resolution, downsample_factor=8, channels=64,
                               channel_mult=tuple(c // 64 for c in CHANNELS), num_res_blocks=1,
                               norm_groups=32, latent_dim=64, codebook_size=k, codebook_dim=8)
    tok = ImageTokenizer(cfg)
    tok.train()
    tok(torch.rand(8, 3, resolution, resolution) * 2 - 1)  # k-means init, as after training
    return tok.eval()


def build_diffusers(resolution: int, k: int):
    from diffusers import VQModel

    return VQModel(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(CHANNELS),
        up_block_types=("UpDecoderBlock2D",) * len(CHANNELS), block_out_channels=CHANNELS,
        layers_per_block=1, latent_channels=64, num_vq_embeddings=k, vq_embed_dim=8,
        norm_num_groups=32, sample_size=resolution).eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--codebook-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    ours = build_ours(args.resolution, args.codebook_size)
    theirs = build_diffusers(args.resolution, args.codebook_size)
    x = torch.rand(args.batch, 3, args.resolution, args.resolution)
    grid = ours.encode(x)
    h = w = args.resolution // 8

    @torch.inference_mode()
    def theirs_encode():
        latents = theirs.encode(x * 2 - 1).latents
        return theirs.quantize(latents)[2][2]

    idx = theirs_encode().reshape(args.batch, h * w)

    @torch.inference_mode()
    def theirs_decode():
        quant = theirs.quantize.get_codebook_entry(idx.flatten(), (args.batch, h, w, 8))
        return theirs.decode(quant, force_not_quantize=True).sample

    fns = [lambda: ours.encode(x), theirs_encode, lambda: ours.decode(grid), theirs_decode]
    t = median_seconds(fns, args.repeats, args.warmup)
    n_ours = sum(q.numel() for q in ours.parameters())
    n_theirs = sum(q.numel() for q in theirs.parameters())
    print(f"{args.resolution} px, batch {args.batch}, f = 8, channels {CHANNELS}, "
          f"K = {args.codebook_size}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"parameters: ours {n_ours / 1e6:.2f}M, diffusers {n_theirs / 1e6:.2f}M\n")
    print(f"{'':8} {'ours img/s':>11} {'diffusers img/s':>16} {'ratio':>7}")
    for name, a, b in (("encode", t[0], t[1]), ("decode", t[2], t[3])):
        print(f"{name:8} {args.batch / a:11.1f} {args.batch / b:16.1f} {b / a:6.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
