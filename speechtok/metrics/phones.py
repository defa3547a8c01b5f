"""How well frame-level units agree with frame-level phone labels: phone purity, cluster purity
and PNMI, after Hsu et al. 2021, "HuBERT: Self-Supervised Speech Representation Learning by
Masked Prediction of Hidden Units" (arXiv:2106.07447), Sec. IV. Codes are any integer
array-like, flattened; labels are any array-like of the same length (strings allowed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .codebook import flat_codes


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
    z = flat_codes(codes)
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
