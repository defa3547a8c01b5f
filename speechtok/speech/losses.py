"""Loss terms of the speech tokenizer as pure functions; their weights live in
`SpeechTokenizerConfig.loss_weights`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def log_mel_l1(pred_log_mel: torch.Tensor, target_log_mel: torch.Tensor) -> torch.Tensor:
    """Mean |log-mel_pred − log-mel| over bins and frames: the log-magnitude term of the
    multi-resolution STFT loss (Yamamoto et al. 2020, Parallel WaveGAN) on a mel axis, where
    bands are as wide as hearing resolves them, so formants count more than high harmonics."""
    return F.l1_loss(pred_log_mel.float(), target_log_mel)


# (n_fft, hop) of the multi-resolution STFT loss: windows of 32, 64 and 128 ms at 16 kHz
# (Parallel WaveGAN uses 512/1024/2048 at 24 kHz), so both onsets and harmonics are judged.
STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))


def multi_resolution_stft_loss(pred: torch.Tensor, target: torch.Tensor,
                               resolutions=STFT_RESOLUTIONS) -> torch.Tensor:
    """Spectral convergence + mean |log |STFT| difference|, averaged over `resolutions`
    (Yamamoto et al. 2020, Parallel WaveGAN, Eq. 1-4), between waveforms (B, T).

    Phase is not compared directly; overlapping frames at several resolutions only agree when
    the waveform's phase is consistent, which is what teaches a vocoder its phase."""
    total = pred.new_zeros(())
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft, device=pred.device)
        p, t = (torch.stft(x.float(), n_fft, hop, window=window, return_complex=True).abs()
                for x in (pred, target))
        convergence = torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp_min(1e-7)
        magnitude = F.l1_loss(torch.log(p.clamp_min(1e-5)), torch.log(t.clamp_min(1e-5)))
        total = total + convergence + magnitude
    return total / len(resolutions)
