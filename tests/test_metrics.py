"""Each metric against a hand computation."""

import math

import numpy as np
import pytest
import torch

from speechtok.metrics import (
    bitrate,
    cluster_purity,
    codebook_usage,
    entropy_bits,
    frame_phone_labels,
    perplexity,
    phone_purity,
    pnmi,
)


def test_codebook_usage_and_entropy():
    codes = [0, 0, 1, 3]  # K = 8: three of eight codes used; p = (1/2, 1/4, 1/4)
    assert codebook_usage(codes, 8) == pytest.approx(3 / 8)
    assert entropy_bits(codes, 8) == pytest.approx(1.5)
    assert perplexity(codes, 8) == pytest.approx(2**1.5)


def test_uniform_and_collapsed_codebooks():
    uniform = torch.arange(16).repeat(3)  # torch input accepted
    assert entropy_bits(uniform, 16) == pytest.approx(4.0)
    assert perplexity(uniform, 16) == pytest.approx(16.0)
    assert codebook_usage(uniform, 16) == 1.0
    collapsed = np.full((2, 5), 7)
    assert entropy_bits(collapsed, 16) == 0.0
    assert perplexity(collapsed, 16) == 1.0


def test_codes_out_of_range_rejected():
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        codebook_usage([0, 4], 4)
    with pytest.raises(ValueError, match="integers"):
        entropy_bits(np.array([0.5]), 4)


def test_bitrate():
    nominal_only = bitrate(50, 1024)
    assert nominal_only.nominal == pytest.approx(500.0)
    assert nominal_only.empirical is None
    rate = bitrate(50, 1024, codes=[0, 0, 1, 3])
    assert rate.empirical == pytest.approx(50 * 1.5)


def test_frame_phone_labels():
    phones = [["pau", 0.0, 0.1], ["hh", 0.1, 0.15], ["ow", 0.15, 0.3]]
    # 20 Hz frames: centres at 0.025, 0.075, 0.125, 0.175, 0.225, 0.275, then past the end.
    labels = frame_phone_labels(phones, 7, 20.0)
    assert labels == ["pau", "pau", "hh", "ow", "ow", "ow", "ow"]
    assert frame_phone_labels(phones, 0, 50.0) == []


# A 2×2 joint table, counts over 10 frames:
#            z=0  z=1
#   y="a"     4    1
#   y="b"     2    3
CODES = [0] * 4 + [1] * 1 + [0] * 2 + [1] * 3
LABELS = ["a"] * 5 + ["b"] * 5


def test_purities_on_2x2_joint():
    # phone purity = Σ_z max_y p(y,z) = (4 + 3) / 10; cluster purity = Σ_y max_z p(y,z) = (4 + 3)/10
    assert phone_purity(CODES, LABELS) == pytest.approx(0.7)
    assert cluster_purity(CODES, LABELS) == pytest.approx(0.7)
    # Asymmetric case: one code for everything → phone purity = majority share, cluster purity 1.
    assert phone_purity([5] * 10, LABELS) == pytest.approx(0.5)
    assert cluster_purity([5] * 10, LABELS) == pytest.approx(1.0)


def test_pnmi_on_2x2_joint():
    p = np.array([[0.4, 0.1], [0.2, 0.3]])
    py, pz = p.sum(1), p.sum(0)
    mi = sum(p[i, j] * math.log(p[i, j] / (py[i] * pz[j])) for i in range(2) for j in range(2))
    h_y = -sum(q * math.log(q) for q in py)  # = log 2
    assert pnmi(CODES, LABELS) == pytest.approx(mi / h_y)


def test_pnmi_extremes():
    labels = ["a", "b", "c", "a", "b", "c"]
    # Codes that determine the phone (even split over several codes per phone) → PNMI 1.
    assert pnmi([3, 7, 9, 4, 7, 9], labels) == pytest.approx(1.0)
    # Codes independent of the phone: every (y, z) pair equally often → PNMI 0.
    indep_labels = ["a", "a", "b", "b"]
    assert pnmi([0, 1, 0, 1], indep_labels) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(pnmi([0, 1], ["a", "a"]))


def test_length_mismatch_rejected():
    with pytest.raises(ValueError, match="frames"):
        pnmi([0, 1, 2], ["a", "b"])
