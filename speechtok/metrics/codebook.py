"""Code-quality metrics for discrete tokenizers: codebook use, perplexity, entropy, bitrate.

All functions are pure and take codes as any integer array-like (numpy array, torch tensor,
list). Codes are flattened: pass only real frames (drop padding before calling), since every
frame counts equally in the histograms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def flat_codes(codes) -> np.ndarray:
    """Codes as a flat int64 numpy array (torch tensors are moved to the CPU first)."""
    if hasattr(codes, "detach"):  # torch.Tensor, without importing torch for numpy users
        codes = codes.detach().cpu().numpy()
    arr = np.asarray(codes).reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _histogram(codes, K: int) -> np.ndarray:
    """Counts of each code in [0, K); raises ValueError on an empty input or codes out of range."""
    flat = flat_codes(codes)
    if K <= 0:
        raise ValueError(f"K must be positive, got {K}")
    if flat.size == 0:
        raise ValueError("codes is empty")
    if flat.min() < 0 or flat.max() >= K:
        raise ValueError(f"codes must lie in [0, {K}), got range [{flat.min()}, {flat.max()}]")
    return np.bincount(flat, minlength=K)


def codebook_usage(codes, K: int) -> float:
    """Fraction of the K codebook entries that occur at least once in ``codes``."""
    return float(np.count_nonzero(_histogram(codes, K)) / K)


def entropy_bits(codes, K: int) -> float:
    """Entropy, in bits, of the empirical code distribution (0 ≤ H ≤ log2 K)."""
    counts = _histogram(codes, K)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def perplexity(codes, K: int) -> float:
    """Codebook perplexity exp(H) (H in nats) = 2**H (H in bits): the effective number of codes.

    It equals K when all codes are equally used and 1 when a single code is used, the usual
    codebook-collapse diagnostic (e.g. the perplexity logged by VQ-VAE implementations).
    """
    return float(2.0 ** entropy_bits(codes, K))


@dataclass(frozen=True)
class Bitrate:
    """Bits per second of a code stream.

    nominal: frame_rate · log2 K, the rate of fixed-length codes (SoundStream / EnCodec count
        bandwidth this way, one codebook).
    empirical: frame_rate · H(codes), the rate an ideal entropy coder of the unigram code
        distribution would reach; None when no codes were given.
    """

    nominal: float
    empirical: float | None


def bitrate(frame_rate: float, K: int, codes=None) -> Bitrate:
    """Nominal and (if ``codes`` is given) empirical bitrate of one codebook at ``frame_rate`` Hz.

    For R residual codebooks, call per codebook and add the figures.
    """
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    if K <= 0:
        raise ValueError(f"K must be positive, got {K}")
    nominal = frame_rate * math.log2(K)
    empirical = None if codes is None else frame_rate * entropy_bits(codes, K)
    return Bitrate(nominal=nominal, empirical=empirical)
