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
