"""Code-quality metrics for discrete tokenizers: codebook use, bitrate, and phone alignment.

All functions are pure and take codes as any integer array-like (numpy array, torch tensor,
list). Codes are flattened: pass only real frames (drop padding before calling), since every
frame counts equally in the histograms.

The phone-alignment metrics follow Hsu et al. 2021, "HuBERT: Self-Supervised Speech
Representation Learning by Masked Prediction of Hidden Units" (arXiv:2106.07447), Sec. IV,
which measures how well frame-level cluster codes z agree with frame-level phone labels y.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _flat_codes(codes) -> np.ndarray:
    """Codes as a flat int64 numpy array (torch tensors are moved to the CPU first)."""
    if hasattr(codes, "detach"):  # torch.Tensor, without importing torch for numpy users
        codes = codes.detach().cpu().numpy()
    arr = np.asarray(codes).reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _histogram(codes, K: int) -> np.ndarray:
    """Counts of each code in [0, K); raises ValueError on an empty input or codes out of range."""
    flat = _flat_codes(codes)
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


def frame_phone_labels(phones: Sequence[Sequence], num_frames: int, frame_rate: float) -> list[str]:
    """Phone label of each code frame, taken at the frame centre.

    Args:
        phones: ``[[phone, start_s, end_s], ...]`` in time order and contiguous (as the corpus
            metadata stores flite's ``-psdur`` alignment).
        num_frames: number of code frames.
        frame_rate: code frames per second (frame i covers [i/fr, (i+1)/fr)).

    Returns:
        ``num_frames`` phone strings. Frame i gets the phone whose interval contains its centre
        (i + 0.5) / frame_rate. Frames past the last phone's end (the encoder pads the final
        frame) get the last phone, which is the closing pause.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be ≥ 0, got {num_frames}")
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    if not phones:
        raise ValueError("phones is empty")
    ends = np.asarray([float(p[2]) for p in phones])
    centres = (np.arange(num_frames) + 0.5) / frame_rate
    # side="right": a centre exactly on a boundary belongs to the phone that starts there.
    idx = np.minimum(np.searchsorted(ends, centres, side="right"), len(phones) - 1)
    return [str(phones[i][0]) for i in idx]


def _joint(codes, labels) -> np.ndarray:
    """Joint probability table p(y, z): rows are labels y, columns are codes z, sums to 1."""
    z = _flat_codes(codes)
    y = np.asarray(labels).reshape(-1)
    if z.size != y.size:
        raise ValueError(f"codes has {z.size} frames but labels has {y.size}")
    if z.size == 0:
        raise ValueError("codes is empty")
    # Re-index both to 0..n-1 so the table only holds values that occur (labels may be strings).
    _, yi = np.unique(y, return_inverse=True)
    _, zi = np.unique(z, return_inverse=True)
    table = np.zeros((yi.max() + 1, zi.max() + 1), dtype=np.float64)
    np.add.at(table, (yi.reshape(-1), zi.reshape(-1)), 1.0)
    return table / z.size


def phone_purity(codes, labels) -> float:
    """E_z[max_y p(y|z)] (HuBERT Sec. IV): accuracy of labelling each code by its majority phone.

    Σ_z p(z) max_y p(y|z) = Σ_z max_y p(y, z).
    """
    return float(_joint(codes, labels).max(axis=0).sum())


def cluster_purity(codes, labels) -> float:
    """E_y[max_z p(z|y)] (HuBERT Sec. IV): how concentrated each phone is on a single code.

    Σ_y p(y) max_z p(z|y) = Σ_y max_z p(y, z).
    """
    return float(_joint(codes, labels).max(axis=1).sum())


def pnmi(codes, labels) -> float:
    """Phone-normalised mutual information I(y; z) / H(y) (HuBERT Sec. IV), in [0, 1].

    The fraction of phone-label uncertainty removed by knowing the code: 1 when codes determine
    the phone, 0 when they are independent of it. NaN if there is a single phone (H(y) = 0).
    """
    pyz = _joint(codes, labels)
    py = pyz.sum(axis=1, keepdims=True)
    pz = pyz.sum(axis=0, keepdims=True)
    nz = pyz > 0
    mutual_info = float((pyz[nz] * np.log(pyz[nz] / (py @ pz)[nz])).sum())
    h_y = float(-(py[py > 0] * np.log(py[py > 0])).sum())
    if h_y == 0.0:
        return float("nan")
    # Rounding can push I slightly outside [0, H(y)]; clip so perfect codes report exactly 1.
    return min(max(mutual_info / h_y, 0.0), 1.0)
