"""The networks of the speech tokenizer: log-mel front end, conv encoder, spectrogram decoder.

Conv tensors are (B, C, T) throughout; the rearrange to the quantizer's (B, N, D) happens once, in
`SpeechTokenizer` (as in EnCodec).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn


class ChannelNorm(nn.Module):
    """LayerNorm over channels at each time step of a (B, C, T) tensor.

    Local in time, unlike GroupNorm/InstanceNorm (whose statistics span the whole sequence): a
    frame's output depends only on its receptive field, so encoding in chunks gives the same
    codes as one pass, and nothing depends on the rest of the batch.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ResBlock1d(nn.Module):
    """Pre-activation residual block with a dilated conv (WaveNet / HiFi-GAN style).

    Dilations 1, 3, 9 stacked give a wide receptive field at few parameters.
    """

    def __init__(self, channels: int, dilation: int, kernel_size: int = 3, local: bool = True):
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        # The encoder must be local in time (exact chunking); the decoder need not be, and
        # GroupNorm's utterance-wide statistics decoded more intelligibly there.
        self.norm = ChannelNorm(channels) if local else nn.GroupNorm(1, channels)
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=pad, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(F.gelu(self.norm(x)))))


def res_stack(channels: int, dilations: tuple[int, ...], local: bool = True) -> nn.Sequential:
    return nn.Sequential(*[ResBlock1d(channels, d, local=local) for d in dilations])


class LogMelFrontEnd(nn.Module):
    """Waveform (B, T) → normalised log-mel (B, n_mels, T // hop).

    The first, fixed layer of the encoder: a mel filterbank is what a learned strided conv
    front end (wav2vec 2.0) converges to after many GPU hours, and we have CPU minutes.
    `center=False` with a symmetric pad of (n_fft - hop) / 2 gives exactly one frame per hop,
    so frame boundaries stay aligned when long audio is encoded in chunks.
    """

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int,
                 cmn_frames: int = 0):
        super().__init__()
        self.cmn_frames = cmn_frames
        self.n_fft, self.hop_length = n_fft, hop_length
        self.pad = (n_fft - hop_length) // 2
        # Constants, not weights: non-persistent, so checkpoints hold only what was learned.
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2,
                                                   n_mels, sample_rate)
        self.register_buffer("mel_fb", fb.T.contiguous(), persistent=False)  # (M, F)
        # Global feature statistics, set from training data by the trainer (not per
        # utterance: per-utterance normalisation would make a frame's code depend on the
        # whole file, breaking chunked encoding).
        self.register_buffer("feat_mean", torch.zeros(n_mels, 1))
        self.register_buffer("feat_std", torch.ones(n_mels, 1))

    def log_mel(self, wav: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        wav = F.pad(wav, (self.pad, self.pad))
        spec = torch.stft(wav, self.n_fft, self.hop_length, window=self.window, center=False,
                          return_complex=True).abs().pow(2)  # (B, F, T/hop)
        if warp is not None:
            spec = warp_frequency(spec, warp)
        return torch.log((self.mel_fb @ spec).clamp_min(1e-5))  # (B, M, T/hop)

    def features(self, wav: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        """The log-mel, mean-normalised if configured, before the global scaling."""
        feats = self.log_mel(wav, warp)
        if self.cmn_frames:
            # Sliding cepstral-mean-style normalisation (Kaldi's apply-cmvn-sliding): remove
            # the local average spectrum (channel, speaker tilt) over a window of cmn_frames.
            # Local, so chunked encoding stays exact when the overlap covers half the window.
            feats = feats - F.avg_pool1d(feats, self.cmn_frames | 1, stride=1,
                                         padding=self.cmn_frames // 2, count_include_pad=False)
        return feats

    def forward(self, wav: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        return (self.features(wav, warp) - self.feat_mean) / self.feat_std


def warp_frequency(spec: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Vocal tract length perturbation (Jaitly & Hinton 2013): S'(f) = S(f / alpha).

    `spec` (B, F, T), `alpha` (B,) around 1. Scaling the frequency axis mimics a shorter or
    longer vocal tract, so an encoder trained on warped input learns units that do not depend
    on the speaker's formant scale: what lets units transfer to a voice never heard.
    """
    n_freq = spec.shape[1]
    pos = (torch.arange(n_freq, device=spec.device)[None] / alpha[:, None]).clamp(max=n_freq - 1)
    lo = pos.floor().long()  # (B, F)
    hi = (lo + 1).clamp(max=n_freq - 1)
    frac = (pos - lo)[..., None]  # (B, F, 1)
    expand = (-1, -1, spec.shape[-1])
    low, high = (spec.gather(1, idx[..., None].expand(*expand)) for idx in (lo, hi))
    return low * (1 - frac) + high * frac


class SpeechEncoder(nn.Module):
    """Log-mel frames → latent vectors at the unit rate: (B, T) → (B, D, T / total_stride)."""

    def __init__(self, cfg):
        super().__init__()
        self.front = LogMelFrontEnd(cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels,
                                    int(cfg.cmn_seconds * cfg.sample_rate / cfg.hop_length))
        c = cfg.channels
        layers: list[nn.Module] = [nn.Conv1d(cfg.n_mels, c, 7, padding=3),
                                   res_stack(c, cfg.dilations)]
        for s in cfg.strides:
            # kernel 2s, padding s/2 (even s) maps length L to exactly L / s.
            layers += [nn.GELU(), nn.Conv1d(c, c, 2 * s, stride=s, padding=s // 2),
                       res_stack(c, cfg.dilations)]
        layers += [nn.GELU(), nn.Conv1d(c, cfg.latent_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, wav: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.front(wav, warp))

    def from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """The same from `front(wav)` already computed (the speaker encoder shares it)."""
        return self.net(feats)


class SpeakerEncoder(nn.Module):
    """Normalised log-mel (B, M, T) → one global voice vector (B, speaker_dim).

    The decoder takes the voice from here, so the units need not spend codes on who speaks
    (speech resynthesis with a speaker embedding, Polyak et al. 2021). Time-averaged, so it
    carries voice quality, not the phone sequence.
    """

    def __init__(self, cfg):
        super().__init__()
        c = cfg.speaker_channels
        self.net = nn.Sequential(nn.Conv1d(cfg.n_mels, c, 5, padding=2), nn.GELU(),
                                 nn.Conv1d(c, c, 5, padding=2, stride=2), nn.GELU())
        self.proj = nn.Linear(c, cfg.speaker_dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.proj(self.net(feats).mean(-1))


class SpectrogramDecoder(nn.Module):
    """Unit vectors (B, D, N) → log-mel (B, decoder_mels, N * upsample).

    A 20 ms mel (one frame per unit, no upsampling) rather than the linear log |STFT| at 5 ms
    that Griffin-Lim inverts: 80 numbers per unit instead of 4 × 257, more intelligible after
    resynthesis and faster to train (docs/EXPERIMENTS.md, "Speech tokenizer").
    """

    def __init__(self, cfg):
        super().__init__()
        c = cfg.decoder_channels
        self.inp = nn.Conv1d(cfg.latent_dim, c, 3, padding=1)
        self.speaker = nn.Linear(cfg.speaker_dim, c) if cfg.speaker_dim else None
        layers: list[nn.Module] = [res_stack(c, cfg.dilations + cfg.dilations, local=False)]
        for _ in range(int(round(math.log2(cfg.upsample)))):
            layers += [nn.GELU(), nn.ConvTranspose1d(c, c // 2, 4, stride=2, padding=1),
                       res_stack(c // 2, (1, 3), local=False)]
            c //= 2
        layers += [nn.GELU(), nn.Conv1d(c, cfg.decoder_mels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(z)  # (B, C, N)
        if self.speaker is not None:
            h = h + self.speaker(speaker)[..., None]  # the voice, broadcast over time
        return self.net(h)


def receptive_half_width(cfg) -> int:
    """Frames (at the unit rate) on each side that can influence one unit of the encoder.

    Used to size the overlap when encoding in chunks: with at least this much context on each
    side, a chunk's inner frames see exactly what a single pass sees.
    """
    per_stack = sum(cfg.dilations)  # kernel 3: each block adds `dilation` frames a side
    frames = 3 + per_stack + 1  # input conv (k=7) and the stack, at the mel rate
    rate = 1
    for s in cfg.strides:
        frames += s // 2 + s  # the strided conv's reach, at the finer rate
        rate *= s
        frames += (per_stack) * rate
    frames += 1 * rate  # output conv (k=3)
    frames += math.ceil(cfg.n_fft / cfg.hop_length / 2)  # the mel window
    frames += math.ceil(cfg.cmn_seconds * cfg.sample_rate / cfg.hop_length / 2) + 1
    return math.ceil(frames / rate) + 1
