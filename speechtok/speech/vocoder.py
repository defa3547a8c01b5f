"""A learned decoder from the tokenizer's log-mel to a waveform: Vocos (Siuzdak 2023).

    log-mel (B, M, N) at the tokenizer's decoder hop ─► conv embed ─► ConvNeXt blocks
        ─► linear head: log-magnitude and phase of N + 1 STFT frames ─► inverse STFT ─► wav

Vocos predicts the complex spectrum at the feature rate and lets an inverse STFT do the
upsampling, instead of HiFi-GAN's stack of transposed convolutions: far fewer operations per
sample, which is what makes it trainable on a CPU budget. The phase is predicted as an angle
and used through cos/sin (Vocos, Sec. 3.2), so its 2π wrap costs nothing.

It is trained on a frozen tokenizer (speechtok.speech.vocoder_train: `speechtok train vocoder
--tokenizer T`), on the log-mels the tokenizer's decoder predicts from the units, so it learns
to undo that decoder's smoothing too; it is saved in T/vocoder/ and `SpeechTokenizer.decode`
uses it when present (Griffin-Lim otherwise, or on request).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from ..fields import option
from ..hub.loading import QuietLocalLoading

VOCODER_FOLDER = "vocoder"  # where a tokenizer folder keeps its learned decoder


@dataclass
class VocoderConfig:
    """The learned decoder; `sample_rate`, `input_mels` and `hop` are taken from the tokenizer
    it decodes for."""

    kind: str = option("vocoder", "what the model is; always 'vocoder' here")
    sample_rate: int = option(16000, "output sample rate, Hz (the tokenizer's)")
    input_mels: int = option(80, "mel bins of the input (the tokenizer's decoder_mels)")
    hop: int = option(320, "samples per input frame (the tokenizer's decoder_hop)")
    n_fft: int = option(1280, "FFT size of the predicted spectrum (4 × hop: 75 % overlap)")
    dim: int = option(192, "channels of the ConvNeXt blocks")
    intermediate_dim: int = option(576, "hidden size of each block's pointwise MLP")
    blocks: int = option(6, "ConvNeXt blocks")
    kernel_size: int = option(7, "depthwise convolution kernel, frames")

    def __post_init__(self):
        if self.kind != "vocoder":
            raise ValueError(f"kind must be 'vocoder' here, got {self.kind!r}")
        if self.n_fft < self.hop:
            raise ValueError(f"n_fft {self.n_fft} must be ≥ hop {self.hop}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")

    def to_dict(self) -> dict:
        return asdict(self)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv → LayerNorm → pointwise MLP (GELU) → layer scale, residual (ConvNeXt,
    Liu et al. 2022, as 1-D blocks in Vocos)."""

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, intermediate_dim)
        self.pw2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, N)
        h = self.norm(self.dwconv(x).transpose(1, 2))
        h = self.gamma * self.pw2(F.gelu(self.pw1(h)))
        return x + h.transpose(1, 2)


class Vocoder(QuietLocalLoading, nn.Module, PyTorchModelHubMixin,
              library_name="speechtok-lm", tags=["vocoder", "vocos", "speechtok-lm"]):
    """Log-mel `(batch, input_mels, frames)` → waveform `(batch, frames * hop)`."""

    def __init__(self, config: VocoderConfig | dict | None = None):
        super().__init__()
        if config is None:
            config = VocoderConfig()
        elif isinstance(config, dict):
            config = VocoderConfig(**config)
        self.config = c = config
        self.embed = nn.Conv1d(c.input_mels, c.dim, 7, padding=3)
        self.norm = nn.LayerNorm(c.dim)
        self.blocks = nn.ModuleList(ConvNeXtBlock(c.dim, c.intermediate_dim, c.kernel_size,
                                                  1 / c.blocks) for _ in range(c.blocks))
        self.final_norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.n_fft + 2)  # (n_fft/2 + 1) log-magnitudes and phases
        self.window: torch.Tensor
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)

    def spectrum(self, log_mel: torch.Tensor) -> torch.Tensor:
        """The complex STFT (B, n_fft/2 + 1, N + 1) the waveform is the inverse of: the last
        input frame is repeated, since a centred inverse STFT of N·hop samples needs N + 1
        frames."""
        x = F.pad(log_mel.float(), (0, 1), mode="replicate")
        h = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        out = self.head(self.final_norm(h.transpose(1, 2))).transpose(1, 2)  # (B, F·2, N+1)
        log_mag, phase = out.float().chunk(2, dim=1)
        # exp of a clipped log: magnitudes up to 100 (Vocos clips at 1e2 as well)
        mag = torch.exp(log_mag.clamp(max=math.log(100.0)))
        return torch.polar(mag, phase)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        n = log_mel.shape[-1]
        return torch.istft(self.spectrum(log_mel), self.config.n_fft, self.config.hop,
                           window=self.window, center=True, length=n * self.config.hop)


__all__ = ["VOCODER_FOLDER", "Vocoder", "VocoderConfig"]
