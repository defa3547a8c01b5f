"""Real recording conditions and the codec figures: degradations, unit agreement, STOI / PESQ /
MCD, the learned decoder (Vocos), photo crops and decompression bombs."""

from __future__ import annotations

import json
import math
import zlib

import pytest
import torch
from conftest import speechlike
from helpers import FAST, TINY_ARGS, TINY_VOCODER

from speechtok.cli import main
from speechtok.metrics.speech_quality import mel_cepstral_distortion, pesq_wb, speech_quality
from speechtok.speech import SpeechTokenizer
from speechtok.speech.augment import (
    DEGRADATIONS,
    ChannelAugment,
    add_noise,
    change_speed,
    degrade,
    synthetic_rir,
    telephone,
    unit_agreement,
)
from speechtok.speech.vocoder import Vocoder, VocoderConfig

SR = 16000


def _speech(seconds=2.0, seed=0) -> torch.Tensor:
    return torch.from_numpy(speechlike(seconds, SR, seed))[None]


# ---- degradations ----------------------------------------------------------------------------

def test_noise_is_added_at_the_requested_snr():
    wav = _speech()
    g = torch.Generator().manual_seed(0)
    noisy = add_noise(wav, torch.tensor([10.0]), g)
    snr = 10 * math.log10(wav.pow(2).mean() / (noisy - wav).pow(2).mean())
    assert abs(snr - 10.0) < 0.01


def test_room_impulse_response_decays_by_its_rt60():
    g = torch.Generator().manual_seed(0)
    rir = synthetic_rir(torch.tensor([0.3, 0.6]), SR, g, seconds=0.6)
    assert torch.allclose(rir.pow(2).sum(-1), torch.ones(2))
    # energy in 10 ms windows, 0.05 s and 0.25 s in: the decay rate is 60 dB per rt60
    window = lambda r, t: r[int(t * SR): int(t * SR) + 160].pow(2).sum()  # noqa: E731
    for row, rt60 in zip(rir, (0.3, 0.6), strict=True):
        drop_db = 10 * math.log10(window(row, 0.05) / window(row, 0.25))
        assert abs(drop_db - 60 * 0.2 / rt60) < 6


def test_telephone_band_removes_what_is_above_4_khz():
    t = torch.arange(SR) / SR
    wav = (0.3 * torch.sin(2 * math.pi * 1000 * t) + 0.3 * torch.sin(2 * math.pi * 6000 * t))[None]
    out = telephone(wav, SR)
    spec = torch.fft.rfft(out[0]).abs()
    assert spec[6000] < 0.01 * spec[1000]
    assert out.shape == wav.shape


def test_speed_perturbation_changes_the_length():
    wav = _speech(1.0)
    assert abs(change_speed(wav, 1.1, SR).shape[-1] - SR / 1.1) < 200
    assert change_speed(wav, 1.0, SR) is wav


def test_channel_augment_is_reproducible_and_leaves_untouched_what_it_does_not_draw():
    wav = torch.cat([_speech(1.0, s) for s in range(6)])
    aug = ChannelAugment(SR, noise_prob=0.5, reverb_prob=0.5, telephone_prob=0.5)
    a = aug(wav, torch.Generator().manual_seed(3))
    b = aug(wav, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == wav.shape
    assert not torch.equal(a, wav)
    assert not ChannelAugment(SR).active
    assert torch.equal(ChannelAugment(SR)(wav, torch.Generator()), wav)


def test_unit_agreement_and_degrade():
    assert unit_agreement(torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 2, 0, 4]])) == 0.75
    wav = _speech()
    for condition in DEGRADATIONS:
        out = degrade(wav, condition, SR, seed=1)
        assert out.shape == wav.shape and not torch.equal(out, wav)
        assert torch.equal(out, degrade(wav, condition, SR, seed=1))
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(wav, "underwater", SR)


# ---- STOI, PESQ, MCD ---------------------------------------------------------------------------

def test_quality_figures_are_perfect_for_a_copy_and_fall_with_noise():
    wav = _speech(3.0)[0]
    same = speech_quality(wav, wav)
    assert same["stoi"] > 0.999 and same["estoi"] > 0.999 and same["mcd_db"] < 1e-3
    assert same["pesq_wb"] > 4.5
    g = torch.Generator().manual_seed(0)
    figures = [speech_quality(wav, add_noise(wav[None], torch.tensor([snr]), g)[0])
               for snr in (20.0, 5.0)]
    assert figures[0]["stoi"] > figures[1]["stoi"]
    assert figures[0]["pesq_wb"] > figures[1]["pesq_wb"]
    assert figures[0]["mcd_db"] < figures[1]["mcd_db"]
    # a gain change is no distortion of the cepstrum (c0 is left out)
    assert mel_cepstral_distortion(wav, 0.5 * wav) < 1e-3


def test_pesq_refuses_other_rates_and_gives_nan_for_silence():
    with pytest.raises(ValueError, match="16000"):
        pesq_wb(torch.zeros(8000), torch.zeros(8000), 8000)
    assert math.isnan(pesq_wb(torch.zeros(SR), torch.zeros(SR)))


# ---- the learned decoder ---------------------------------------------------------------------

def test_vocoder_is_saved_with_the_tokenizer_and_used_by_decode(tiny_tokenizer, tmp_path):
    tok = tiny_tokenizer
    units = tok.encode(_speech(1.0))
    griffin_lim = tok.decode(units)
    tok.attach_vocoder(Vocoder(VocoderConfig(**TINY_VOCODER)))
    learned = tok.decode(units)
    assert learned.shape == griffin_lim.shape == (1, units.shape[-1] * 320)
    assert not torch.allclose(learned, griffin_lim)
    assert torch.equal(tok.decode(units, vocoder="griffin_lim"), griffin_lim)
    tok.save_pretrained(tmp_path / "tok")
    assert (tmp_path / "tok" / "vocoder" / "model.safetensors").exists()
    loaded = SpeechTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert loaded.vocoder is not None
    assert torch.equal(loaded.decode(units), learned)
    with pytest.raises(ValueError, match="does not fit"):
        tok.attach_vocoder(Vocoder(VocoderConfig(**TINY_VOCODER, hop=160)))
    tok.attach_vocoder(None)
    with pytest.raises(ValueError, match="no learned decoder"):
        tok.decode(units, vocoder="learned")


def test_train_vocoder_cli_learns_resumes_exactly_and_eval_compares_decoders(
        audio_folder, tmp_path, capsys):
    tok = tmp_path / "tok"
    assert main(["train", "speech", "--data", str(audio_folder), "--out", str(tok), *TINY_ARGS,
                 *FAST, "--steps", "2"]) == 0
    voc_args = ["train", "vocoder", "--tokenizer", str(tok), "--data", str(audio_folder),
                *[f"--{k}={v}" for k, v in TINY_VOCODER.items()], "--batch_size", "2",
                "--segment_seconds", "0.4", "--warmup_steps", "1", "--eval_max_items", "2",
                "--lr", "0.01", "--log_every", "10"]
    assert main([*voc_args, "--steps", "30", "--eval_every", "30", "--save_every", "10",
                 "--stop_after_steps", "10"]) == 0
    assert main([*voc_args, "--steps", "30", "--eval_every", "30", "--save_every", "10",
                 "--resume"]) == 0
    curve = json.loads((tok / "vocoder" / "train_curve.json").read_text())
    losses = [p["train/loss"] for p in curve]
    assert len(losses) == 3 and losses[-1] < losses[0]
    other = tmp_path / "other_vocoder"
    assert main([*voc_args, "--steps", "30", "--eval_every", "30", "--save_every", "10",
                 "--out", str(other)]) == 0
    a = Vocoder.from_pretrained(str(tok / "vocoder")).state_dict()
    b = Vocoder.from_pretrained(str(other)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # resumed == uninterrupted
    capsys.readouterr()
    assert main(["eval", "--tokenizer", str(tok), "--data", str(audio_folder), "--resynthesis",
                 "2", "--agreement", "2", "--save-resynthesis", str(tmp_path / "resyn")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for decoder in ("griffin_lim", "learned"):
        assert 0 <= metrics[f"resynthesis_{decoder}_stoi"] <= 1
        assert metrics[f"resynthesis_{decoder}_mcd_db"] > 0
        assert len(list((tmp_path / "resyn" / decoder).glob("*.wav"))) == 2
    for condition in DEGRADATIONS:
        assert 0 <= metrics[f"unit_agreement_{condition}"] <= 1


def test_train_speech_with_every_augmentation(audio_folder, tmp_path):
    assert main(["train", "speech", "--data", str(audio_folder), "--out", str(tmp_path / "t"),
                 *TINY_ARGS, *FAST, "--steps", "2", "--noise_prob", "1", "--reverb_prob", "1",
                 "--telephone_prob", "1", "--speed_range", "0.1"]) == 0
    assert main(["train", "speech", "--data", str(audio_folder), "--out", str(tmp_path / "u"),
                 *TINY_ARGS, "--noise_prob", "2"]) == 2


# ---- photographs -----------------------------------------------------------------------------

def _bomb_png(path, side=20000) -> None:
    """A valid greyscale PNG of side × side black pixels (1 bit each: 50 MB decoded, a few
    hundred KB on disk)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\0" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_an_error_naming_the_file(tmp_path, capsys):
    from speechtok.image import ImageTokenizer, ImageTokenizerConfig

    bomb = tmp_path / "huge_scan.png"
    _bomb_png(bomb)
    tok = ImageTokenizer(ImageTokenizerConfig(resolution=16, channels=8, channel_mult=(1, 2, 2),
                                              norm_groups=4, latent_dim=8))
    tok.save_pretrained(tmp_path / "img_tok")
    assert main(["encode", "--tokenizer", str(tmp_path / "img_tok"), str(bomb)]) == 2
    err = capsys.readouterr().err
    assert "huge_scan.png" in err and "too large" in err


def test_random_crops_and_flips_of_photos(tmp_path):
    from PIL import Image

    from speechtok.image.data import open_image_splits

    for split in ("train", "valid"):
        (tmp_path / split).mkdir()
        for i in range(3):
            x = torch.linspace(0, 255, 120)[None].expand(80, 120)  # a left-to-right ramp
            arr = torch.stack([x, x.flip(1), torch.full_like(x, 40.0 * i)], -1)
            Image.fromarray(arr.byte().numpy(), "RGB").save(tmp_path / split / f"{i}.png")
    train, valid = open_image_splits(tmp_path, 16, crop_scale=(0.3, 1.0), flip=True)
    a, b = train.batch(5, 8, seed=0), train.batch(5, 8, seed=0)
    assert a.shape == (8, 3, 16, 16) and torch.equal(a, b)
    assert not torch.equal(a, train.batch(6, 8, seed=0))
    # mirrored crops have the ramp running the other way
    slope = (a[:, 0, :, -1] - a[:, 0, :, 0]).mean(-1)
    assert (slope > 0).any() and (slope < 0).any()
    assert valid.load([0]).shape == (1, 3, 16, 16)  # evaluation: centre crops
    with pytest.raises(ValueError, match="crop_scale"):
        open_image_splits(tmp_path, 16, crop_scale=(0.0, 1.0))

