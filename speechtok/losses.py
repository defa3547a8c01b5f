"""Loss terms as pure functions; their weights live in the model config's `loss_weights`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def spectral_l1(pred_log_mag: torch.Tensor, target_log_mag: torch.Tensor) -> torch.Tensor:
    """Mean |log|S_pred| − log|S|| over time-frequency bins: the log-magnitude term of the
    multi-resolution STFT loss (Yamamoto et al. 2020, Parallel WaveGAN), at one resolution
    because the decoder outputs the spectrogram directly."""
    return F.l1_loss(pred_log_mag, target_log_mag)


def mel_l1(pred_log_mag: torch.Tensor, target_log_mag: torch.Tensor,
           mel_fb: torch.Tensor) -> torch.Tensor:
    """L1 between log-mel spectra of the two magnitudes: weights errors by perceptual band
    width, so low frequencies, where speech formants live, count more than in `spectral_l1`.
    `mel_fb` is (freq_bins, n_mels), as from torchaudio.functional.melscale_fbanks."""
    def log_mel(log_mag):
        return torch.log(torch.einsum("bft,fm->bmt", log_mag.exp(), mel_fb).clamp_min(1e-5))
    return F.l1_loss(log_mel(pred_log_mag), log_mel(target_log_mag))
