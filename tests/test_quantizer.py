"""Fast unit tests of speechtok.quantization (tiny sizes, CPU)."""

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from speechtok.quantization import FSQ, QuantizerOutput, ResidualVQ, VectorQuantizer


def clustered(n_clusters=8, per_cluster=64, dim=4, spread=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(n_clusters, dim, generator=g) * 3
    x = centers.repeat_interleave(per_cluster, 0) + spread * torch.randn(
        n_clusters * per_cluster, dim, generator=g)
    return x[torch.randperm(len(x), generator=g)].view(1, -1, dim)


def sq_error(vq, x):
    vq.eval()
    with torch.no_grad():
        return (vq(x).quantized - x).pow(2).mean().item()


@pytest.mark.parametrize("kwargs", [{}, {"codebook_dim": 4, "l2_normalize": True},
                                    {"ema_decay": 0.9, "dead_code_steps": 2}])
def test_vq_shapes(kwargs):
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 32, **kwargs)
    out = vq(torch.randn(3, 10, 16))
    assert isinstance(out, QuantizerOutput)
    assert out.quantized.shape == (3, 10, 16) and out.codes.shape == (3, 10)
    assert out.codes.dtype == torch.long and out.loss.dim() == 0
    assert vq.codebook.shape == (32, kwargs.get("codebook_dim", 16))
    assert set(out.metrics) == {"usage", "perplexity"}
    assert not any(m.requires_grad for m in out.metrics.values())


def test_straight_through_gradient_reaches_input():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, kmeans_init=False)
    x = torch.randn(2, 5, 8, requires_grad=True)
    vq(x).quantized.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # identity gradient, as in VQ-VAE

    proj = VectorQuantizer(8, 16, codebook_dim=3, l2_normalize=True)
    x.grad = None
    proj(x).quantized.square().sum().backward()
    assert x.grad.abs().sum() > 0 and proj.in_proj.weight.grad.abs().sum() > 0


def test_codebook_and_commitment_terms_hand_computed():
    beta = 0.25
    vq = VectorQuantizer(2, 2, beta=beta, kmeans_init=False)
    with torch.no_grad():
        vq.embed.copy_(torch.tensor([[0.0, 0.0], [4.0, 4.0]]))
    x = torch.tensor([[[1.0, 0.0], [3.0, 5.0]]], requires_grad=True)
    out = vq(x)
    assert out.codes.tolist() == [[0, 1]]
    diff = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # x - e[code]
    expected = diff.pow(2).mean()
    assert torch.allclose(out.losses["codebook"], expected)
    assert torch.allclose(out.losses["commitment"], expected)
    assert torch.allclose(out.loss, (1 + beta) * expected)
    out.loss.backward()
    # The codebook term (weight 1) moves the codes; beta only scales the encoder's commitment.
    assert torch.allclose(vq.embed.grad, -2 * diff / diff.numel())
    assert torch.allclose(x.grad[0], beta * 2 * diff / diff.numel())


def test_ema_moves_codes_to_assigned_means_without_codebook_grad():
    decay = 0.5
    vq = VectorQuantizer(2, 2, ema_decay=decay, kmeans_init=False, eps=1e-12)
    init = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    vq.embed.copy_(init)
    vq.embed_sum.copy_(init)
    assert not vq.embed.requires_grad and list(vq.parameters()) == []
    x = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [9.0, 9.0]]], requires_grad=True)
    out = vq(x)
    assert set(out.losses) == {"commitment"}
    assert torch.allclose(out.loss, vq.beta * out.losses["commitment"])
    out.loss.backward()  # gradient reaches the encoder only
    # N = g*1 + (1-g)*n, m = g*e + (1-g)*sum: code 0 -> (0.5*0 + 0.5*3) / (0.5 + 0.5*2) = 1.
    assert torch.allclose(vq.embed, torch.tensor([[1.0, 1.0], [9.5, 9.5]]), atol=1e-5)
    for _ in range(20):
        vq(x)
    assert torch.allclose(vq.embed, torch.tensor([[1.5, 1.5], [9.0, 9.0]]), atol=1e-4)


def test_kmeans_init_beats_random_init_on_clustered_data():
    x = clustered()
    torch.manual_seed(0)
    km = VectorQuantizer(4, 8, kmeans_init=True)
    torch.manual_seed(0)
    rnd = VectorQuantizer(4, 8, kmeans_init=False)
    assert not km.initted
    km.train()(x)
    assert bool(km.initted)
    assert sq_error(km, x) < 0.5 * sq_error(rnd, x)


def test_eval_forward_has_no_side_effects():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 8, ema_decay=0.9, dead_code_steps=1).eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq(clustered())
    vq.encode(clustered())
    assert all(torch.equal(before[k], v) for k, v in vq.state_dict().items())


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_dead_code_restart_revives_unused_codes(ema_decay):
    torch.manual_seed(0)
    x = clustered(n_clusters=8, dim=4)
    vq = VectorQuantizer(4, 16, ema_decay=ema_decay, kmeans_init=False, dead_code_steps=2)
    with torch.no_grad():  # all codes far away but one: only code 0 is ever chosen
        vq.embed.fill_(100.0)
        vq.embed[0] = 0.0
        if ema_decay:
            vq.embed_sum.copy_(vq.embed)
    first = vq(x).metrics["usage"].item()
    assert first == 1 / 16
    for _ in range(3):
        vq(x)
    assert vq(x).metrics["usage"].item() >= 0.5
    assert vq.embed.abs().max() < 50  # the far codes were re-seeded from data


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_l2_normalized_low_dim_codes_have_unit_norm(ema_decay):
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 32, codebook_dim=4, l2_normalize=True, ema_decay=ema_decay,
                         dead_code_steps=1)
    for _ in range(3):
        vq(torch.randn(2, 20, 16) * 5)
    assert torch.allclose(vq.codebook.norm(dim=-1), torch.ones(32), atol=1e-5)


@pytest.mark.parametrize("kwargs", [{}, {"codebook_dim": 4, "l2_normalize": True}])
def test_encode_decode_match_forward_in_eval(kwargs):
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 32, **kwargs)
    x = torch.randn(2, 30, 16)
    vq(x)  # k-means init in training mode
    vq.eval()
    out = vq(x.requires_grad_(True))  # the straight-through value is exactly the code vector
    codes = vq.encode(x)
    assert torch.equal(codes, vq.encode(x)) and torch.equal(codes, out.codes)
    assert torch.equal(vq.decode(codes), out.quantized)


def test_decode_rejects_out_of_range_ids():
    vq = VectorQuantizer(4, 8)
    with pytest.raises(ValueError, match="8"):
        vq.decode(torch.tensor([[0, 8]]))
    with pytest.raises(ValueError, match="-3"):
        vq.decode(torch.tensor([[-3, 1]]))
    with pytest.raises(ValueError, match="1000"):
        FSQ(4, (8, 5, 5, 5)).decode(torch.tensor([[1000]]))


def test_usage_and_perplexity_exact():
    vq = VectorQuantizer(2, 4, kmeans_init=False).eval()
    with torch.no_grad():
        vq.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    x = torch.tensor([[[0.1, 0.0], [0.0, 0.2], [9.0, 0.0], [0.0, 9.0]]])
    out = vq(x)
    assert out.codes.tolist() == [[0, 0, 1, 2]]
    assert out.metrics["usage"].item() == pytest.approx(0.75)
    entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert out.metrics["perplexity"].item() == pytest.approx(math.exp(entropy), rel=1e-6)


def test_residual_vq_error_decreases_with_depth():
    torch.manual_seed(0)
    x = torch.randn(1, 512, 8)
    rvq = ResidualVQ(4, 8, 16)
    out = rvq(x)  # k-means init of every stage on its residuals
    assert out.codes.shape == (1, 4, 512)
    assert {"usage", "perplexity", "usage_0", "usage_3"} <= set(out.metrics)
    rvq.eval()
    codes = rvq.encode(x)
    assert torch.equal(codes, rvq(x).codes)
    assert torch.allclose(rvq.decode(codes), rvq(x).quantized, atol=1e-6)
    partial, errors = torch.zeros_like(x), []
    for i, stage in enumerate(rvq.stages):
        partial = partial + stage.decode(codes[:, i])
        errors.append((partial - x).pow(2).mean().item())
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors


@pytest.mark.parametrize("ema_decay", [0.9, None])
def test_residual_vq_straight_through_gradient_is_the_identity(ema_decay):
    # One straight-through over the sum of the stages: d quantized / d x = I exactly (summing
    # each stage's own straight-through output would give depth × I, encodec issue #25).
    torch.manual_seed(0)
    rvq = ResidualVQ(3, 8, 16, ema_decay=ema_decay)  # no projection: identity in and out
    x = torch.randn(2, 20, 8, requires_grad=True)
    weights = torch.randn(2, 20, 8)
    (rvq(x).quantized * weights).sum().backward()
    assert torch.equal(x.grad, weights)


def test_residual_vq_gradient_and_projection():
    torch.manual_seed(0)
    rvq = ResidualVQ(3, 8, 16, codebook_dim=4, ema_decay=0.9)
    x = torch.randn(2, 20, 8, requires_grad=True)
    out = rvq(x)
    assert out.quantized.shape == (2, 20, 8) and out.loss.requires_grad
    (out.quantized.sum() + out.loss).backward()
    assert rvq.out_proj.weight.grad.abs().sum() > 0 and x.grad.abs().sum() > 0
    # l2_normalize acts once on the shared projected input; stages stay Euclidean
    l2 = ResidualVQ(3, 8, 16, codebook_dim=4, l2_normalize=True)
    l2(x)
    assert not any(stage.l2_normalize for stage in l2.stages)
    l2.eval()
    with torch.no_grad():
        z = l2._project(x)
    assert torch.allclose(z.norm(dim=-1), torch.ones(2, 20), atol=1e-5)
    assert torch.equal(l2.decode(l2.encode(x)), l2(x).quantized)


def test_fsq_round_trip_and_codebook_size():
    fsq = FSQ(4, (8, 5, 5, 5))
    assert fsq.codebook_size == 1000
    grid = fsq.codebook
    assert grid.shape == (1000, 4) and len(torch.unique(grid, dim=0)) == 1000
    assert grid.min() >= -1 and grid.max() <= 1
    # grid point -> per-channel digit -> mixed-radix id recovers every id (a bijection)
    digits = (fsq.decode(torch.arange(1000).view(1, -1)) * fsq.half_width + fsq.half_width)
    assert torch.equal((digits.long() * fsq._basis).sum(-1)[0], torch.arange(1000))
    x = (torch.randn(2, 50, 4) * 3).requires_grad_(True)
    out = fsq(x)
    assert out.loss.item() == 0 and out.losses == {}
    assert out.codes.min() >= 0 and out.codes.max() < 1000
    out.quantized.sum().backward()
    assert x.grad.abs().sum() > 0  # straight-through rounding
    proj = FSQ(16, (8, 5, 5, 5)).eval()
    y = torch.randn(2, 50, 16, requires_grad=True)
    assert torch.equal(proj.decode(proj.encode(y)), proj(y).quantized)
    assert torch.equal(proj.encode(y), proj(y).codes)


@pytest.mark.parametrize("make", [
    lambda: VectorQuantizer(8, 16, codebook_dim=4, ema_decay=0.9, dead_code_steps=2),
    lambda: VectorQuantizer(8, 16, l2_normalize=True),
    lambda: ResidualVQ(2, 8, 16),
])
def test_state_dict_round_trip_safetensors(make, tmp_path):
    torch.manual_seed(0)
    vq = make()
    x = torch.randn(2, 40, 8)
    for _ in range(2):
        vq(x)
    vq.eval()
    save_file(vq.state_dict(), tmp_path / "q.safetensors")
    torch.manual_seed(1)
    loaded = make()
    loaded.load_state_dict(load_file(tmp_path / "q.safetensors"))
    loaded.eval()
    assert torch.equal(loaded.encode(x), vq.encode(x))
    assert torch.equal(loaded(x).quantized, vq(x).quantized)
    inits = [m.initted for m in loaded.modules() if isinstance(m, VectorQuantizer)]
    assert all(bool(i) for i in inits)  # a reloaded model is not k-means re-initialised
