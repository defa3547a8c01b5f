"""ImageTokenizer: shapes, input rule, errors, save/load, losses and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import tiny_image_tokenizer
from PIL import Image

from speechtok import ImageTokenizer, ImageTokenizerConfig
from speechtok.auto import load_tokenizer
from speechtok.image.io import prepare_images
from speechtok.image.losses import adaptive_gan_weight, hinge_d_loss, hinge_g_loss
from speechtok.image.perceptual import PerceptualLoss
from speechtok.metrics.image import psnr, ssim


@pytest.mark.parametrize("f", [4, 8])
def test_round_trip_shapes(f):
    tok = tiny_image_tokenizer(downsample_factor=f, resolution=32)
    x = torch.rand(3, 3, 32, 32)
    grid = tok.encode(x)
    assert grid.shape == (3, 32 // f, 32 // f) and grid.dtype == torch.long
    assert int(grid.max()) < tok.config.codebook_size
    y = tok.decode(grid)
    assert y.shape == (3, 3, 32, 32)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    # the training forward's codes are the ones encode gives
    assert torch.equal(tok(x * 2 - 1).quantizer.codes, grid)


@pytest.mark.parametrize("kind", ["rvq", "rfsq"])
def test_residual_grid_has_depth(kind):
    tok = tiny_image_tokenizer(quantizer=kind, rvq_depth=2)
    grid = tok.encode(torch.rand(2, 3, 16, 16))
    assert grid.shape == (2, 2, 4, 4)
    assert tok.decode(grid).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("kind", ["lfq", "bsq", "gumbel"])
def test_single_code_quantizers_make_grids(kind):
    tok = tiny_image_tokenizer(quantizer=kind, codebook_size=16)
    x = torch.rand(2, 3, 16, 16)
    grid = tok.encode(x)
    assert grid.shape == (2, 4, 4) and int(grid.max()) < 16
    assert tok.decode(grid).shape == (2, 3, 16, 16)
    tok.eval()
    assert torch.equal(tok(x * 2 - 1).quantizer.codes.view(2, 4, 4), grid)


def test_channel_mult_must_match_factor():
    with pytest.raises(ValueError, match="levels"):
        ImageTokenizerConfig(downsample_factor=8, channel_mult=(1, 2))
    with pytest.raises(ValueError, match="divisible"):
        ImageTokenizerConfig(resolution=20, downsample_factor=8)


def test_input_rule_modes_and_sizes():
    # greyscale, transparent RGBA and a non-square colour image all become (3, R, R) RGB
    grey = Image.new("L", (16, 16), 0)
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 0))  # fully transparent red → white
    wide = Image.new("RGB", (64, 32), (0, 0, 255))
    wide.paste((255, 0, 0), (0, 0, 8, 32))  # red left eighth, cropped away by the centre crop
    x = prepare_images([grey, rgba, wide], 16)
    assert x.shape == (3, 3, 16, 16)
    assert torch.allclose(x[0], torch.zeros(3, 16, 16))
    assert torch.allclose(x[1], torch.ones(3, 16, 16))
    assert torch.allclose(x[2, 2], torch.ones(16, 16), atol=1e-3)
    assert float(x[2, 0].max()) < 1e-3  # the red strip was outside the centre square
    # 16-bit greyscale keeps its whole range (PIL's own convert would clip it at 255: white)
    ramp = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    for sixteen in (Image.fromarray(ramp), Image.fromarray(ramp.astype(np.int32), "I")):
        y = prepare_images([sixteen], 16)
        assert torch.allclose(y[0, 0], torch.from_numpy(ramp / 65535.0).float(), atol=1e-4)
    # already at the resolution: untouched; uint8 accepted
    t = torch.rand(2, 3, 16, 16)
    assert torch.equal(prepare_images(t, 16), t)
    u = (t * 255).round().byte()
    assert torch.allclose(prepare_images(u, 16), u.float() / 255)


def test_bad_inputs_are_clear_errors():
    tok = tiny_image_tokenizer()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tok.encode(torch.rand(1, 3, 16, 16) * 2 - 1)
    with pytest.raises(ValueError, match="channels"):
        tok.encode(torch.rand(1, 2, 16, 16))
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(torch.full((1, 3, 16, 16), float("nan")))
    grid = torch.zeros(1, 4, 4, dtype=torch.long)
    grid[0, 1, 2] = 16
    with pytest.raises(ValueError, match="16 is out of range"):
        tok.decode(grid)
    with pytest.raises(ValueError, match="integer"):
        tok.decode(grid.float())


def test_save_load_identical(tmp_path):
    tok = tiny_image_tokenizer()
    x = torch.rand(4, 3, 16, 16)
    tok.save_pretrained(tmp_path / "tok")
    assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "tok").iterdir()}
    loaded = load_tokenizer(tmp_path / "tok")
    assert isinstance(loaded, ImageTokenizer)
    grid = tok.encode(x)
    assert torch.equal(loaded.encode(x), grid)
    assert torch.equal(loaded.decode(grid), tok.decode(grid))


def test_adaptive_weight_matches_separate_backward_passes():
    tok = tiny_image_tokenizer()  # eval mode: the codebook stays put between the passes
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    logits = torch.nn.Conv2d(3, 1, 3)  # a stand-in discriminator

    def losses():
        x_hat = tok(x).reconstruction
        return (x_hat - x).abs().mean(), hinge_g_loss(logits(x_hat))

    rec, gan = losses()
    lam = adaptive_gan_weight(rec, gan, tok.decoder.last_layer)
    grads = []
    for pick in (0, 1):
        tok.zero_grad()
        losses()[pick].backward()
        grads.append(tok.decoder.last_layer.grad.norm())
    expected = grads[0] / (grads[1] + 1e-4)
    assert lam.requires_grad is False
    assert torch.allclose(lam, expected, rtol=1e-4)
    # doubling the reconstruction loss doubles λ (the weight balances the two gradients)
    rec, gan = losses()
    assert torch.allclose(adaptive_gan_weight(2 * rec, gan, tok.decoder.last_layer),
                          2 * expected, rtol=1e-4)


def test_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # relu(1 - real) = [0, 0.5] → 0.25; relu(1 + fake) = [0, 1] → 0.5
    assert torch.isclose(hinge_d_loss(real, fake), torch.tensor(0.375))
    assert torch.isclose(hinge_g_loss(fake), torch.tensor(1.0))


def test_psnr_and_ssim():
    x = torch.rand(2, 3, 16, 16) * 0.8 + 0.1
    assert torch.allclose(psnr(x + 0.1, x), torch.full((2,), 20.0), atol=1e-3)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)
    noisy = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    noisier = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert (ssim(noisier, x) < ssim(noisy, x)).all() and (ssim(noisy, x) < 1).all()


@pytest.mark.parametrize("size", [32, 24])
def test_ssim_matches_scikit_image(size):
    # the reference implementation, with the paper's settings: 11×11 Gaussian window of σ 1.5,
    # population (co)variances, mean over the valid positions of each channel
    from skimage.metrics import structural_similarity  # a test dependency ([dev] extra)

    torch.manual_seed(0)
    x = torch.rand(3, 3, size, size)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    ref = [structural_similarity(y[i].numpy(), x[i].numpy(), data_range=1.0, channel_axis=0,
                                 gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False) for i in range(3)]
    assert torch.allclose(ssim(y, x), torch.tensor(ref), atol=1e-4)


def test_perceptual_loss_from_local_safetensors(tmp_path):
    from safetensors.torch import save_file

    ref = PerceptualLoss()
    weights = {f"features.{k}": v for k, v in ref.features.state_dict().items()}
    save_file(weights, str(tmp_path / "vgg.safetensors"))
    loss = PerceptualLoss.from_file(tmp_path / "vgg.safetensors")
    for a, b in zip(loss.features.parameters(), ref.features.parameters(), strict=True):
        assert torch.equal(a, b)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    pred = (x + 0.3 * torch.randn_like(x)).requires_grad_()
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    d = loss(pred, x)
    assert float(d.detach()) > 0
    d.backward()
    assert pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())  # frozen
    torch.save({}, tmp_path / "vgg.pth")
    with pytest.raises(ValueError, match="safetensors"):
        PerceptualLoss.from_file(tmp_path / "vgg.pth")
