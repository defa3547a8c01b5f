"""What speech codec papers report of a resynthesis against its original: STOI / ESTOI,
wide-band PESQ and mel-cepstral distortion (EnCodec, Défossez et al. 2022; Vocos, Siuzdak
2023; WavTokenizer, Ji et al. 2024).

- STOI (Taal et al. 2011) and ESTOI (Jensen & Taal 2016): intelligibility, 0-1, from the
  correlation of short-time one-third-octave envelopes (`pystoi`, resamples to 10 kHz).
- PESQ wide-band (ITU-T P.862.2): perceived quality, 1.0-4.64 (`pesq`, the ITU reference C
  code), defined at 16 kHz only.
- MCD (Kubichek 1993): 10 / ln 10 · sqrt(2 · Σ_d (c_d - ĉ_d)²) dB over cepstral coefficients
  1..24 (c0, the energy, excluded), averaged over frames. The cepstrum here is the DCT of an
  80-band log-mel amplitude spectrum (25 ms / 10 ms), scaled as a real cepstrum, not SPTK's
  mel-generalised cepstrum, so compare MCDs computed by this function with each other, not
  with a paper's table. The resynthesis is frame-aligned with its original (same length), so
  no time warping.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torchaudio

SAMPLE_RATE = 16000  # PESQ wide-band is defined at 16 kHz
MCD_COEFFICIENTS = 24
_MEL_BANDS = 80


def _as_numpy(wav) -> np.ndarray:
    if torch.is_tensor(wav):
        wav = wav.detach().float().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    if wav.size == 0:
        raise ValueError("empty waveform")
    return wav


def _same_length(ref, deg) -> tuple[np.ndarray, np.ndarray]:
    ref, deg = _as_numpy(ref), _as_numpy(deg)
    n = min(len(ref), len(deg))
    return ref[:n], deg[:n]


def stoi(ref, deg, sample_rate: int = SAMPLE_RATE, extended: bool = False) -> float:
    """STOI (or ESTOI with `extended`) of `deg` against `ref` (mono waveforms, same rate)."""
    from pystoi import stoi as _stoi

    ref, deg = _same_length(ref, deg)
    return float(_stoi(ref, deg, sample_rate, extended=extended))


def pesq_wb(ref, deg, sample_rate: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ (MOS-LQO) of `deg` against `ref`; NaN where PESQ finds no speech in
    `ref` (a clip of silence or a very short one)."""
    from pesq import PesqError, pesq

    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"wide-band PESQ needs {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
    ref, deg = _same_length(ref, deg)
    try:
        with np.errstate(invalid="ignore", divide="ignore"):  # it scales by max |ref|
            return float(pesq(sample_rate, ref, deg, "wb"))
    except PesqError:
        return math.nan


@functools.cache
def _cepstrum_matrices(sample_rate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The STFT window, the mel filterbank (M, F) and the DCT (C + 1, M), built once per rate."""
    mel = torchaudio.functional.melscale_fbanks(201, 0.0, sample_rate / 2, _MEL_BANDS,
                                                sample_rate)  # (F, M), n_fft 400
    dct = torchaudio.functional.create_dct(MCD_COEFFICIENTS + 1, _MEL_BANDS, "ortho")  # (M, C)
    return torch.hann_window(400), mel.T.contiguous(), dct.T.contiguous()


def _mel_cepstrum(wav: np.ndarray, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cepstrum (C, T) without c0, frame level (T,) in dB) of a waveform."""
    window, mel, dct = _cepstrum_matrices(sample_rate)
    spec = torch.stft(torch.from_numpy(wav).float(), 400, 160, window=window,
                      return_complex=True).abs()
    level = 10 * torch.log10(spec.pow(2).sum(0).clamp_min(1e-10))
    log_amp = torch.log((mel @ spec).clamp_min(1e-5))  # (M, T): ln of a mel amplitude
    # The real cepstrum of a symmetric spectrum of 2M bins is c_n = (1/M) Σ_m ln A_m cos(π n
    # (m + ½) / M); the orthonormal DCT-II is that times sqrt(2M).
    return (dct @ log_amp)[1:] / math.sqrt(2 * _MEL_BANDS), level


def mel_cepstral_distortion(ref, deg, sample_rate: int = SAMPLE_RATE) -> float:
    """Frame-averaged MCD (dB) of `deg` against `ref`, over frames where `ref` is within
    40 dB of its loudest frame (silence would otherwise dominate the average)."""
    ref, deg = _same_length(ref, deg)
    (c_ref, level), (c_deg, _) = _mel_cepstrum(ref, sample_rate), _mel_cepstrum(deg, sample_rate)
    voiced = level > level.max() - 40
    diff = (c_ref - c_deg)[:, voiced]
    per_frame = (10 / math.log(10)) * torch.sqrt(2 * diff.pow(2).sum(0))
    return float(per_frame.mean())


def speech_quality(ref, deg, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
    """All four figures of one resynthesis: stoi, estoi, pesq_wb, mcd_db."""
    return {"stoi": stoi(ref, deg, sample_rate), "estoi": stoi(ref, deg, sample_rate, True),
            "pesq_wb": pesq_wb(ref, deg, sample_rate),
            "mcd_db": mel_cepstral_distortion(ref, deg, sample_rate)}
