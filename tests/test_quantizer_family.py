"""The rest of the quantizer family: LFQ, BSQ, Gumbel-softmax, SimVQ, the rotation trick,
residual FSQ and quantizer dropout (tiny sizes, CPU)."""

import itertools
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from speechtok.quantization import (
    FSQ,
    QUANTIZERS,
    GumbelQuantizer,
    LookupFreeQuantizer,
    QuantizerConfig,
    ResidualFSQ,
    ResidualVQ,
    VectorQuantizer,
    build_quantizer,
)
from speechtok.quantization.binary import entropy_terms

CONFIGS = {
    "vq": {}, "rvq": {"rvq_depth": 3, "quantizer_dropout": 0.5}, "fsq": {"fsq_levels": (5, 4)},
    "rfsq": {"fsq_levels": (5, 4), "rvq_depth": 3}, "lfq": {"codebook_size": 64},
    "bsq": {"codebook_size": 64}, "gumbel": {"codebook_size": 32},
    "simvq": {"quantizer": "vq", "simvq": True, "ema_decay": None},
    "rotation": {"quantizer": "vq", "rotation_trick": True},
}


def make(name, dim=12):
    torch.manual_seed(0)
    fields = {"quantizer": name, "codebook_size": 32, "codebook_dim": 6, **CONFIGS[name]}
    cfg = QuantizerConfig(**fields)
    return cfg, build_quantizer(cfg, dim)


def test_every_quantizer_name_is_covered_here():
    assert set(QUANTIZERS) <= set(CONFIGS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_codes_in_range_and_encode_decode_match_forward(name):
    cfg, q = make(name)
    x = torch.randn(2, 40, 12)
    out = q(x)  # training mode: k-means init where there is one
    shape = (2, cfg.code_depth, 40) if cfg.code_depth > 1 else (2, 40)
    assert out.codes.shape == shape and out.codes.dtype == torch.long
    assert out.codes.min() >= 0 and out.codes.max() < cfg.codebook_size
    assert out.quantized.shape == x.shape and out.loss.dim() == 0 and torch.isfinite(out.loss)
    q.eval()
    with torch.no_grad():
        ev = q(x)
    codes = q.encode(x)
    assert torch.equal(codes, ev.codes)
    assert torch.allclose(q.decode(codes), ev.quantized, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        q.decode(torch.full_like(codes, cfg.codebook_size))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_gradient_reaches_the_input_and_every_learned_part(name):
    _, q = make(name)
    x = torch.randn(2, 40, 12, requires_grad=True)
    out = q(x)
    (out.quantized.square().sum() + out.loss).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in q.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_state_dict_round_trip_through_safetensors(name, tmp_path):
    _, q = make(name)
    x = torch.randn(2, 40, 12)
    q(x)
    q.eval()
    save_file({k: v.contiguous() for k, v in q.state_dict().items()}, tmp_path / "q.safetensors")
    _, fresh = make(name)
    torch.manual_seed(123)  # a differently initialised copy, before loading
    fresh.load_state_dict(load_file(tmp_path / "q.safetensors"))
    fresh.eval()
    assert torch.equal(fresh.encode(x), q.encode(x))
    assert torch.equal(fresh.decode(q.encode(x)), q.decode(q.encode(x)))


# ---- LFQ / BSQ ---------------------------------------------------------------------------

def test_lfq_straight_through_is_the_identity_and_codes_are_the_sign_bits():
    lfq = LookupFreeQuantizer(3, 3)  # no projection
    x = torch.tensor([[[0.5, -2.0, 0.1], [-0.3, 0.2, -0.7]]], requires_grad=True)
    out = lfq(x)
    assert out.codes.tolist() == [[0b101, 0b010]]  # bit i = (channel i > 0)
    assert torch.equal(out.quantized, torch.tensor([[[1.0, -1, 1], [-1, 1, -1]]]))
    out.quantized.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_lfq_loss_terms_hand_computed():
    lfq = LookupFreeQuantizer(2, 2, beta=0.5, entropy_weight=0.2, diversity=0.7, temperature=1.0)
    z = torch.tensor([[[0.5, -2.0], [0.1, 0.3]]])
    out = lfq(z)
    assert out.losses["commitment"].item() == pytest.approx(
        ((0.5 - 1) ** 2 + 1 + 0.9 ** 2 + 0.7 ** 2) / 4)
    # brute force over the 4 corners: p(c | z) = softmax(-|z - c|^2 / tau)
    corners = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=2)))
    p = torch.softmax(-torch.cdist(z[0], corners).square(), dim=-1)  # (2, 4)
    per_sample = -(p * p.log()).sum(-1).mean()
    # the codebook term is the sum of the bits' marginal entropies (the BSQ factorisation)
    bit_p = torch.stack([p[:, corners[:, i] > 0].sum(-1) for i in range(2)], -1).mean(0)
    codebook = -(bit_p * bit_p.log() + (1 - bit_p) * (1 - bit_p).log()).sum()
    assert out.losses["entropy"].item() == pytest.approx((per_sample - 0.7 * codebook).item(),
                                                        rel=1e-5)
    assert out.loss.item() == pytest.approx(
        0.5 * out.losses["commitment"].item() + 0.2 * out.losses["entropy"].item(), rel=1e-6)
    exact = -(p.mean(0) * p.mean(0).log()).sum()
    assert codebook >= exact - 1e-6  # the factorised codebook entropy is an upper bound


def test_entropy_penalty_spreads_codes_when_trained_alone():
    torch.manual_seed(0)
    lfq = LookupFreeQuantizer(8, 4, entropy_weight=1.0, temperature=1.0)
    with torch.no_grad():  # every vector starts in one corner
        lfq.in_proj.weight.mul_(0.1)
        lfq.in_proj.bias.fill_(1.0)
    x = torch.randn(256, 1, 8)
    before = lfq(x).metrics["usage"].item()
    opt = torch.optim.Adam(lfq.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        lfq(x).losses["entropy"].backward()
        opt.step()
    assert before == 1 / 16 and lfq(x).metrics["usage"].item() > 0.5


def test_bsq_corners_lie_on_the_unit_sphere():
    bsq = LookupFreeQuantizer(5, 5, spherical=True)
    x = torch.randn(3, 7, 5) * 4
    out = bsq(x)
    assert torch.allclose(out.quantized.norm(dim=-1), torch.ones(3, 7))
    assert torch.allclose(out.quantized.abs(), torch.full_like(out.quantized, 1 / math.sqrt(5)))
    per_sample, _ = entropy_terms(torch.zeros(4, 5), 1 / math.sqrt(5), 0.01)
    assert per_sample.item() == pytest.approx(5 * math.log(2), rel=1e-6)  # undecided: max


def test_lfq_and_bsq_need_a_power_of_two():
    with pytest.raises(ValueError, match="power of 2"):
        QuantizerConfig(quantizer="lfq", codebook_size=100)


# ---- Gumbel-softmax ------------------------------------------------------------------------

def test_gumbel_kl_to_uniform_hand_computed():
    g = GumbelQuantizer(2, 4, kl_weight=0.5)
    with torch.no_grad():
        g.to_logits.weight.zero_()
        g.to_logits.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0]))
    out = g(torch.randn(1, 3, 2))
    assert out.losses["kl"].item() == pytest.approx(0.0, abs=1e-6)  # uniform q: KL 0
    with torch.no_grad():
        g.to_logits.bias.copy_(torch.tensor([math.log(5.0), 0.0, 0.0, 0.0]))
    q = torch.tensor([5.0, 1, 1, 1]) / 8
    out = g(torch.randn(1, 3, 2))
    assert out.losses["kl"].item() == pytest.approx(float((q * (q * 4).log()).sum()), rel=1e-5)
    assert out.loss.item() == pytest.approx(0.5 * out.losses["kl"].item(), rel=1e-6)


def test_gumbel_hard_samples_are_codes_and_eval_is_the_argmax():
    torch.manual_seed(0)
    g = GumbelQuantizer(4, 8, hard=True)
    x = torch.randn(2, 30, 4, requires_grad=True)
    out = g(x)
    assert torch.allclose(out.quantized, g.embed(out.codes))  # one-hot forward value
    out.quantized.sum().backward()
    assert x.grad.abs().sum() > 0  # the relaxation's gradient
    g.eval()
    assert torch.equal(g(x).codes, g.to_logits(x).argmax(-1))


# ---- SimVQ and the rotation trick --------------------------------------------------------

def test_simvq_learns_the_map_not_the_frozen_codebook():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 8, simvq=True, kmeans_init=False)
    assert "embed" not in dict(vq.named_parameters())
    frozen = vq.embed.clone()
    opt = torch.optim.SGD(vq.parameters(), lr=0.5)
    x = torch.randn(1, 64, 4)
    for _ in range(3):
        opt.zero_grad()
        vq(x).loss.backward()
        opt.step()
    assert torch.equal(vq.embed, frozen)
    assert not torch.allclose(vq.code_map.weight, torch.eye(4))
    # every code moved, not only the ones that won a vector (the point of SimVQ)
    assert (vq.codebook.detach() - frozen).abs().sum(-1).min() > 0


def test_simvq_restart_writes_the_requested_codes_through_the_map():
    torch.manual_seed(0)
    vq = VectorQuantizer(3, 5, simvq=True, kmeans_init=False)
    with torch.no_grad():
        vq.code_map.weight.copy_(torch.randn(3, 3) + 2 * torch.eye(3))
    new = torch.randn(2, 3)
    vq._set_codes(torch.tensor([1, 3]), new)
    assert torch.allclose(vq.codebook[[1, 3]].detach(), new, atol=1e-5)


def test_simvq_with_ema_is_an_error():
    with pytest.raises(ValueError, match="ema_decay"):
        QuantizerConfig(simvq=True, ema_decay=0.9)


def test_rotation_trick_keeps_the_value_and_rotates_the_gradient():
    vq = VectorQuantizer(2, 1, kmeans_init=False, rotation_trick=True)
    with torch.no_grad():
        vq.embed.copy_(torch.tensor([[0.0, 2.0]]))
    e = torch.tensor([[[1.0, 0.0]]], requires_grad=True)
    out = vq(e)
    assert torch.allclose(out.quantized, torch.tensor([[[0.0, 2.0]]]))
    grad_q = torch.tensor([3.0, 1.0])
    (out.quantized[0, 0] * grad_q).sum().backward()
    # e = x-axis, q = 2 · y-axis: R is the 90° rotation x → y, λ = 2; de = λ Rᵀ dq
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    assert torch.allclose(e.grad[0, 0], 2 * rot.T @ grad_q, atol=1e-6)


# ---- residual FSQ and quantizer dropout ---------------------------------------------------

def test_residual_fsq_error_shrinks_with_each_stage_and_depth_one_is_fsq():
    torch.manual_seed(0)
    rfsq = ResidualFSQ(3, 2, (7, 7))
    x = torch.randn(1, 500, 2)
    codes = rfsq.encode(x)
    bounded = rfsq._project(x)  # FSQ's tanh bound, once: what the stages reconstruct
    errors = [(rfsq.decode(codes[:, :n]) - bounded).abs().max().item() for n in (1, 2, 3)]
    # the worst error is half a grid step of the last stage: 1/6, 1/36, 1/216
    assert errors == pytest.approx([1 / 6, 1 / 36, 1 / 216], rel=0.05)
    one = ResidualFSQ(1, 2, (7, 7))
    assert torch.equal(one.encode(x)[:, 0], FSQ(2, (7, 7)).encode(x))


@pytest.mark.parametrize("kind", ["rvq", "rfsq"])
def test_quantizer_dropout_keeps_a_prefix_of_the_stages_in_training_only(kind):
    torch.manual_seed(0)
    if kind == "rvq":
        q = ResidualVQ(4, 6, 16, quantizer_dropout=1.0, kmeans_init=False)
    else:
        q = ResidualFSQ(4, 6, (5, 5), quantizer_dropout=1.0)
    x = torch.randn(32, 10, 6)
    with torch.no_grad():
        out = q(x)
    q.eval()
    prefixes = torch.stack([q.decode(out.codes[:, :n]) for n in range(1, 5)], 1)  # (B, 4, ..)
    match = (prefixes - out.quantized[:, None]).abs().amax((2, 3)) < 1e-5  # (B, 4)
    assert bool(match.any(1).all())  # each item's output is the sum of some prefix
    assert len(set(match.float().argmax(1).tolist())) > 1  # and the prefixes differ
    with torch.no_grad():
        assert torch.allclose(q(x).quantized, q.decode(q.encode(x)), atol=1e-5)


def test_a_registered_quantizer_is_selectable_by_name_in_a_tokenizer():
    from conftest import tiny_config

    from speechtok import SpeechTokenizer
    from speechtok.quantization import register_quantizer

    class MarkedVQ(VectorQuantizer):
        pass

    register_quantizer("marked_vq")(lambda cfg, dim: MarkedVQ(dim, cfg.codebook_size))
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_quantizer("marked_vq")(lambda cfg, dim: None)
        tok = SpeechTokenizer(tiny_config(quantizer="marked_vq"))
        assert isinstance(tok.quantizer, MarkedVQ) and tok.config.code_depth == 1
        units = tok.encode(torch.randn(1, 1600) * 0.1)
        assert units.max() < tok.config.codebook_size
    finally:
        QUANTIZERS.pop("marked_vq")
    with pytest.raises(ValueError, match="quantizer must be one of vq, rvq, fsq"):
        QuantizerConfig(quantizer="marked_vq")
    assert [n for n, e in QUANTIZERS.items() if e.residual] == ["rvq", "rfsq"]
    register_quantizer("not_a_quantizer")(lambda cfg, dim: torch.nn.Linear(dim, dim))
    try:
        with pytest.raises(TypeError, match="not a speechtok.quantization.BaseQuantizer"):
            SpeechTokenizer(tiny_config(quantizer="not_a_quantizer"))
    finally:
        QUANTIZERS.pop("not_a_quantizer")


@pytest.mark.parametrize("name", ["vq", "rvq", "fsq", "rfsq", "lfq", "bsq", "gumbel"])
def test_every_registered_quantizer_is_a_base_quantizer(name):
    from conftest import tiny_config

    from speechtok.quantization import BaseQuantizer, build_quantizer

    cfg = tiny_config(quantizer=name, codebook_size=16, fsq_levels=(4, 4), rvq_depth=2)
    q = build_quantizer(cfg, 8).eval()
    x = torch.randn(2, 5, 8)
    codes = q.encode(x)
    assert isinstance(q, BaseQuantizer) and (q.depth > 1) == QUANTIZERS[name].residual
    assert codes.shape == ((2, q.depth, 5) if q.depth > 1 else (2, 5))
    assert q.decode(codes).shape == x.shape
    assert torch.equal(q.forward(x).codes, codes)


def test_a_residual_quantizer_of_one_stage_builds():
    from conftest import tiny_config

    from speechtok.quantization import build_quantizer

    for name in ("rvq", "rfsq"):
        cfg = tiny_config(quantizer=name, rvq_depth=1, fsq_levels=(4, 4))
        assert build_quantizer(cfg, 8).depth == cfg.code_depth == 1
