"""The spectrogram people look at: dB magnitude, 25 ms windows every 10 ms (the tokenizer front
end's framing). The demo report plots it; the web demo draws it under each audio player."""

from __future__ import annotations

import torch


def log_spectrogram(wav: torch.Tensor, sample_rate: int, floor: float = 1e-4) -> torch.Tensor:
    """Mono `(samples,)` → dB magnitude `(freq bins, frames)`, low frequencies first. Audio
    shorter than one window is zero-padded to one."""
    wav = wav.detach().float().cpu()
    n_fft, hop = int(0.025 * sample_rate), int(0.010 * sample_rate)
    if len(wav) < n_fft:
        wav = torch.nn.functional.pad(wav, (0, n_fft - len(wav)))
    spec = torch.stft(wav, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)
    return 20 * torch.log10(spec.abs() + floor)
