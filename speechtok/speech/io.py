"""Audio loading and conditioning: read any file soundfile can, downmix, resample, validate.

torchaudio 2.9+ no longer reads files itself (that moved to torchcodec, which needs FFmpeg), so
files are read with soundfile (its wheels ship libsndfile) and resampled with
`torchaudio.functional.resample` through `resample`, which bounds its cost for any rate.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
# the largest denominator of the rate ratio: every common pair is exact (44,100 → 16,000 is
# 160/441), and the polyphase filter bank stays below ~1,000 phases
MAX_RATE_DENOMINATOR = 1000
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000  # below telephony; the top audio interfaces


def rational_rates(orig: int, new: int) -> tuple[int, int]:
    """(p, q) with q / p ≈ new / orig and p ≤ MAX_RATE_DENOMINATOR: a polyphase resampler's cost
    grows with the reduced ratio (16,001 → 16,000 Hz is 16,001 phases, 5.5 GB in
    torchaudio), so an odd rate is resampled by the nearest small ratio instead, at worst a
    1/MAX_RATE_DENOMINATOR change of speed (16,001 Hz: none at all, 0.006 %)."""
    from fractions import Fraction

    ratio = Fraction(int(new), int(orig)).limit_denominator(MAX_RATE_DENOMINATOR)
    return ratio.denominator, ratio.numerator


def resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """`wav` (..., samples) at `orig` Hz → at `new` Hz, with memory and time bounded for any pair
    of rates (`rational_rates`)."""
    orig, new = int(orig), int(new)
    for rate in (orig, new):
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise ValueError(f"sample rate {rate:,} Hz is outside {MIN_SAMPLE_RATE:,} to "
                             f"{MAX_SAMPLE_RATE:,} Hz")
    p, q = rational_rates(orig, new)
    return wav if p == q else AF.resample(wav, p, q)


def list_audio_files(folder: str | Path) -> list[Path]:
    """All audio files under `folder` (recursively), sorted so runs are reproducible."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"audio folder not found: {folder}")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Read a file as a mono float waveform `(samples,)` at `sample_rate`.

    Stereo is downmixed and other rates are resampled (silently: reading a file of another rate
    is the normal case for a folder of mixed recordings). A file that cannot be decoded raises
    a ValueError naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    except Exception as err:  # soundfile raises several types for corrupt/unknown formats
        raise ValueError(f"cannot decode audio file {path}: {err}") from err
    wav = torch.from_numpy(np.ascontiguousarray(data.T))  # (C, T)
    try:
        return prepare_waveform(wav.mean(0, keepdim=True), sr, sample_rate, warn=False)[0]
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def decode_audio(data: bytes, sample_rate: int, name: str) -> torch.Tensor:
    """Encoded audio bytes (a `datasets` row, say) as `load_audio` reads a file: mono
    `(samples,)` at `sample_rate`; undecodable bytes raise a ValueError naming `name`."""
    try:
        decoded, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for corrupt/unknown formats
        raise ValueError(f"cannot decode audio of {name}: {err}") from err
    wav = torch.from_numpy(np.ascontiguousarray(decoded.T))  # (C, T)
    return prepare_waveform(wav.mean(0, keepdim=True), sr, sample_rate, warn=False)[0]


def prepare_waveform(
    wav: torch.Tensor, sample_rate: int, target_rate: int, warn: bool = True
) -> torch.Tensor:
    """Validate and condition a waveform batch for a model at `target_rate`.

    Accepts `(samples,)`, `(batch, samples)` or `(batch, channels, samples)`; returns float32
    `(batch, samples)`. Channels are averaged (downmix) and other sample rates resampled, with
    a warning when `warn` is set, since the caller may not expect it. Empty or non-finite
    audio is an error: it would silently poison the encoder's output.
    """
    if not torch.is_tensor(wav):
        wav = torch.as_tensor(np.asarray(wav))
    if not wav.is_floating_point():
        raise ValueError(f"expected a float waveform, got dtype {wav.dtype}")
    if wav.dim() == 1:
        wav = wav[None]
    elif wav.dim() == 3:
        if wav.shape[1] > 1 and warn:
            warnings.warn(f"downmixing {wav.shape[1]} channels to mono", stacklevel=3)
        wav = wav.mean(1)
    elif wav.dim() != 2:
        raise ValueError(f"expected (batch, samples) audio, got shape {tuple(wav.shape)}")
    if wav.shape[-1] == 0:
        raise ValueError("audio is empty (0 samples)")
    if not torch.isfinite(wav).all():
        raise ValueError("audio contains NaN or infinite samples")
    wav = wav.float()
    if int(sample_rate) != int(target_rate):
        if warn:
            warnings.warn(f"resampling audio from {sample_rate} Hz to {target_rate} Hz",
                          stacklevel=3)
        wav = resample(wav, int(sample_rate), int(target_rate))
    return wav


def save_audio(path: str | Path, wav: torch.Tensor, sample_rate: int) -> None:
    """Write a mono waveform `(samples,)` as 16-bit PCM wav, clipped to [-1, 1]."""
    from speechtok.atomic import atomic_path

    wav = wav.detach().float().cpu().clamp(-1, 1).numpy()
    with atomic_path(path) as tmp:  # a failed write leaves no half file, nor loses an old one
        sf.write(str(tmp), wav, sample_rate, subtype="PCM_16")
