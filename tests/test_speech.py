"""SpeechTokenizer: shapes, determinism, chunking, input conditioning, save/load, dedup."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import speechlike, tiny_config

from speechtok import SpeechTokenizer, SpeechTokenizerConfig, dedup, undedup
from speechtok.speech.modules import receptive_half_width


def test_default_config_is_50hz_and_validates():
    cfg = SpeechTokenizerConfig()
    assert cfg.total_stride == 320 and cfg.frame_rate == 50.0
    assert cfg.bitrate == 50 * 8  # 50 Hz × log2(256)
    with pytest.raises(ValueError, match="quantizer"):
        SpeechTokenizerConfig(quantizer="pq")
    with pytest.raises(ValueError, match="strides"):
        SpeechTokenizerConfig(strides=(3,))
    with pytest.raises(ValueError, match="chunk_margin_frames"):
        SpeechTokenizerConfig(chunk_margin_frames=2)
    with pytest.raises(ValueError, match="chunk_margin_frames"):
        SpeechTokenizerConfig(cmn_seconds=10.0)  # the window outgrows the default overlap
    with pytest.raises(ValueError, match="decoder_hop"):
        SpeechTokenizerConfig(decoder_hop=240)
    with pytest.raises(ValueError, match="decoder_hop 40 must be ≥ out_hop"):
        SpeechTokenizerConfig(decoder_hop=40)


def test_configurable_stride_changes_frame_rate(tiny_tokenizer):
    tok = SpeechTokenizer(tiny_config(strides=(2, 2))).eval()
    assert tok.frame_rate == 25.0
    units = tok.encode(torch.randn(1, 16000) * 0.1)
    assert units.shape == (1, 25)
    assert tok.decode(units).shape == (1, 16000)


def test_round_trip_shapes_and_determinism(tiny_tokenizer):
    wav = torch.from_numpy(speechlike(1.01))[None].repeat(2, 1)
    units = tiny_tokenizer.encode(wav, sample_rate=16000)
    assert units.dtype == torch.long and units.shape == (2, 51)  # ceil(16160 / 320)
    assert torch.equal(units, tiny_tokenizer.encode(wav, sample_rate=16000))
    out = tiny_tokenizer.decode(units)
    assert out.shape == (2, 51 * 320) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert torch.equal(out, tiny_tokenizer.decode(units))  # Griffin-Lim from a fixed phase


@pytest.mark.parametrize("cmn_seconds", [0.0, 1.0])
def test_chunked_encoding_equals_single_pass(cmn_seconds):
    tiny_tokenizer = SpeechTokenizer(tiny_config(cmn_seconds=cmn_seconds))
    tiny_tokenizer(torch.randn(4, 16000) * 0.1)
    tiny_tokenizer.eval()
    wav = torch.from_numpy(speechlike(12.0, seed=3))[None]
    single = tiny_tokenizer.encode(wav, chunk_seconds=1000)
    chunked = tiny_tokenizer.encode(wav, chunk_seconds=1.0)  # 12 chunks of 50 frames
    assert chunked.shape == single.shape == (1, 600)
    assert torch.equal(chunked, single)


def test_margin_covers_receptive_field(tiny_tokenizer):
    # Perturb the signal far from a frame: the frame's code must not change; near it, it may.
    cfg = tiny_tokenizer.config
    half = receptive_half_width(cfg)
    wav = torch.from_numpy(speechlike(4.0, seed=5))[None]
    z0 = tiny_tokenizer.encoder(wav)
    far = wav.clone()
    far[:, : (100 - half - 1) * 320] += torch.randn(1, (100 - half - 1) * 320)
    assert torch.allclose(tiny_tokenizer.encoder(far)[..., 100:], z0[..., 100:], atol=1e-5)


def test_resample_and_downmix_warn(tiny_tokenizer):
    x = torch.from_numpy(speechlike(1.0, 8000))[None]
    with pytest.warns(UserWarning, match="resampling"):
        units = tiny_tokenizer.encode(x, sample_rate=8000)
    assert units.shape == (1, 50)
    stereo = torch.randn(1, 2, 16000) * 0.1
    with pytest.warns(UserWarning, match="downmixing"):
        tiny_tokenizer.encode(stereo, sample_rate=16000)


@pytest.mark.parametrize("bad,msg", [
    (torch.zeros(1, 0), "empty"),
    (torch.tensor([[0.0, float("nan"), 0.1]]), "NaN"),
    (torch.zeros(1, 100, dtype=torch.int16), "float"),
])
def test_bad_audio_is_a_clear_error(tiny_tokenizer, bad, msg):
    with pytest.raises(ValueError, match=msg):
        tiny_tokenizer.encode(bad)


def test_out_of_range_units_name_the_id(tiny_tokenizer):
    with pytest.raises(ValueError, match="unit id 99 is out of range"):
        tiny_tokenizer.decode(torch.tensor([[1, 2, 99]]))
    with pytest.raises(ValueError, match="unit id -1"):
        tiny_tokenizer.decode(torch.tensor([[-1]]))


def test_dedup_round_trip_and_decode_with_durations(tiny_tokenizer):
    units = torch.tensor([[3, 3, 3, 1, 1, 7, 3, 3]])
    u, runs = dedup(units)
    assert u[0].tolist() == [3, 1, 7, 3] and runs[0].tolist() == [3, 2, 1, 2]
    assert torch.equal(undedup(u[0][None], runs[0][None]), units)
    with_runs = tiny_tokenizer.decode(u[0][None], runs[0][None])
    assert torch.allclose(with_runs, tiny_tokenizer.decode(units))


def test_decode_batch_of_different_lengths_pads_with_silence(tiny_tokenizer):
    units = torch.tensor([[1, 2], [3, 4]])
    durations = torch.tensor([[1, 1], [2, 3]])
    wav = tiny_tokenizer.decode(units, durations)
    assert wav.shape == (2, 5 * 320)
    assert wav[0, 2 * 320:].abs().max() == 0


def test_save_load_identical(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    files = {p.name for p in (tmp_path / "tok").iterdir()}
    assert {"config.json", "model.safetensors"} <= files
    assert json.loads((tmp_path / "tok" / "config.json").read_text())["kind"] == "speech"
    loaded = SpeechTokenizer.from_pretrained(str(tmp_path / "tok")).eval()
    assert loaded.config == tiny_tokenizer.config
    wav = torch.from_numpy(speechlike(1.5, seed=9))[None]
    units = tiny_tokenizer.encode(wav)
    assert torch.equal(loaded.encode(wav), units)
    assert torch.equal(loaded.decode(units), tiny_tokenizer.decode(units))


@pytest.mark.parametrize("kind", ["rvq", "fsq", "rfsq", "lfq", "bsq", "gumbel"])
def test_other_quantizers(kind):
    tok = SpeechTokenizer(tiny_config(quantizer=kind, rvq_depth=3))
    tok(torch.randn(2, 8000) * 0.1)
    tok.eval()
    units = tok.encode(torch.randn(1, 16000) * 0.1)
    deep = kind in ("rvq", "rfsq")
    assert units.shape == ((1, 3, 50) if deep else (1, 50))
    assert 0 <= int(units.min()) and int(units.max()) < tok.config.codebook_size
    assert tok.decode(units).shape[-1] == 16000
    if kind in ("fsq", "rfsq"):
        assert tok.config.codebook_size == 8 * 5 * 5 * 5


def test_mel_to_log_magnitude_keeps_time_alignment_and_inverts_the_filterbank(tiny_tokenizer):
    """The decoder's 20 ms log-mel becomes a 5 ms linear magnitude for Griffin-Lim: frame t of
    the mel lands on fine frame 4t, and the filterbank applied to the result gives back the
    mel (the pseudo-inverse is a right inverse; only negative bins are floored)."""
    tok, n = tiny_tokenizer, 10
    wav = torch.from_numpy(speechlike(seconds=n * tok.config.total_stride / 16000))[None]
    log_mel = tok.target_log_mel(wav)  # (1, M, n): a real speech-like mel
    assert log_mel.shape == (1, tok.config.decoder_mels, n)
    log_mag = tok.mel_to_log_magnitude(log_mel)
    assert log_mag.shape == (1, tok.config.out_n_fft // 2 + 1, 4 * n)
    back = torch.log(torch.einsum("bft,fm->bmt", log_mag.exp(), tok.synth_fb)[..., ::4])
    assert (back - log_mel).abs().median() < 0.05
    # One loud mel frame → the loudest fine frame is the one centred on the same sample.
    spike = torch.full((1, tok.config.decoder_mels, n), -6.0)
    spike[..., 3] = 0.0
    assert int(tok.mel_to_log_magnitude(spike).mean(1).argmax()) == 12


@pytest.mark.parametrize("cmn_seconds", [0.0, 0.5])
def test_feature_stats_normalise_what_the_encoder_sees(cmn_seconds, audio_folder):
    """The trainer's global statistics are those of the features after sliding CMN, so the
    encoder's input has zero mean and unit variance per bin either way."""
    from speechtok.speech.data import open_splits
    from speechtok.speech.train import feature_stats

    clips, _ = open_splits(audio_folder, 16000)
    tok = SpeechTokenizer(tiny_config(cmn_seconds=cmn_seconds))
    mean, std = feature_stats(tok, clips)
    tok.encoder.front.feat_mean.copy_(mean)
    tok.encoder.front.feat_std.copy_(std)
    feats = torch.cat([tok.encoder.front(clips.load(i)[None])[0] for i in range(len(clips))],
                      dim=-1)
    assert feats.mean(-1).abs().max() < 1e-3
    assert (feats.std(-1) - 1).abs().max() < 1e-2
