"""Real recording conditions, simulated: noise, reverberation, telephone band and codec, speed.

Used two ways. In training, the encoder sees a degraded copy of each clip while the decoder
still reconstructs the clean one, so the units learn to ignore the channel (the data
augmentation of wav2vec 2.0 robust training, Hsu et al. 2021, and of ContentVec's
perturbations, Qian et al. 2022). In evaluation, `DEGRADATIONS` are the fixed conditions under
which unit agreement is measured: the share of frames whose unit is the same for the clean and
the degraded version of one utterance.

Everything draws from a `torch.Generator`, so a step's augmentation is reproducible (and a
resumed run sees the same one). Waveforms are (B, T) float at `sample_rate`.
"""

from __future__ import annotations

import torch
import torchaudio.functional as AF


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def coloured_noise(shape: tuple[int, int], slope: torch.Tensor, g: torch.Generator
                   ) -> torch.Tensor:
    """Gaussian noise (B, T) whose power falls as f^slope (0: white, -1: pink, -2: brown),
    each row at unit RMS: a stand-in for the fans, traffic and hum of real rooms."""
    b, t = shape
    spec = torch.fft.rfft(torch.randn(b, t, generator=g), dim=-1)
    f = torch.arange(spec.shape[-1]).clamp_min(1).float()
    spec = spec * f[None].pow(slope[:, None] / 2)
    noise = torch.fft.irfft(spec, n=t, dim=-1)
    return noise / noise.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-8)


def add_noise(wav: torch.Tensor, snr_db: torch.Tensor, g: torch.Generator,
              slope: torch.Tensor | None = None) -> torch.Tensor:
    """`wav` plus coloured noise at `snr_db` (B,) dB below each row's speech power."""
    if slope is None:
        slope = _uniform(g, wav.shape[0], -2.0, 0.0)
    noise = coloured_noise(tuple(wav.shape), slope, g)
    power = wav.pow(2).mean(-1, keepdim=True).clamp_min(1e-10)
    return wav + noise * (power / 10 ** (snr_db[:, None] / 10)).sqrt()


def synthetic_rir(rt60: torch.Tensor, sample_rate: int, g: torch.Generator,
                  seconds: float = 0.6) -> torch.Tensor:
    """Room impulse responses (B, L): a direct path then exponentially decaying Gaussian noise
    whose energy falls 60 dB in `rt60` (B,) seconds (Sabine's diffuse-tail model; the
    synthetic-RIR augmentation of Ko et al. 2017), unit energy."""
    n = int(seconds * sample_rate)
    t = torch.arange(n).float() / sample_rate
    # amplitude decay: energy ∝ exp(-13.8 t / rt60) (60 dB = ln(10^6) ≈ 13.8 nepers)
    decay = torch.exp(-6.9 * t[None] / rt60[:, None])
    rir = torch.randn(len(rt60), n, generator=g) * decay
    rir[:, 0] = rir[:, 1:].abs().amax(-1) * 2  # the direct path dominates the first sample
    return rir / rir.pow(2).sum(-1, keepdim=True).sqrt()


def reverberate(wav: torch.Tensor, rt60: torch.Tensor, sample_rate: int,
                g: torch.Generator) -> torch.Tensor:
    """`wav` in a room of reverberation time `rt60` (B,) seconds, at the input's RMS."""
    rir = synthetic_rir(rt60, sample_rate, g)
    wet = AF.fftconvolve(wav, rir)[..., :wav.shape[-1]]
    scale = wav.pow(2).mean(-1, keepdim=True).sqrt() / wet.pow(2).mean(-1, keepdim=True).sqrt()
    return wet * scale.nan_to_num(0.0)


def telephone(wav: torch.Tensor, sample_rate: int, mu_law: bool = True) -> torch.Tensor:
    """The narrow-band telephone channel: down to 8 kHz (the band ends at 4 kHz), G.711 μ-law
    8-bit companding when `mu_law`, and back up to `sample_rate`."""
    narrow = AF.resample(wav, sample_rate, 8000)
    if mu_law:
        narrow = AF.mu_law_decoding(AF.mu_law_encoding(narrow.clamp(-1, 1), 256), 256)
    return AF.resample(narrow, 8000, sample_rate)[..., :wav.shape[-1]]


def change_speed(wav: torch.Tensor, factor: float, sample_rate: int) -> torch.Tensor:
    """Speed perturbation (Ko et al. 2015): play `factor` times faster, pitch and tempo
    together, by resampling (a 1.1 speed-up is 10 % shorter)."""
    if factor == 1.0:
        return wav
    # Resampling from sr·factor to sr shortens the clip by `factor`; round the rates to 100 Hz
    # steps so the polyphase filter stays small.
    src = int(round(sample_rate * factor / 100)) * 100
    return AF.resample(wav, src, sample_rate)


class ChannelAugment:
    """The encoder input's degradations in training, each applied to a clip with its own
    probability: coloured noise at a random SNR, synthetic reverberation, the telephone band
    with μ-law. Gain and VTLP stay where they were (the trainer's step)."""

    def __init__(self, sample_rate: int, noise_prob: float = 0.0,
                 noise_snr_db: tuple[float, float] = (5.0, 30.0), reverb_prob: float = 0.0,
                 reverb_rt60: tuple[float, float] = (0.2, 0.8), telephone_prob: float = 0.0):
        self.sample_rate = sample_rate
        self.noise_prob, self.noise_snr_db = noise_prob, tuple(noise_snr_db)
        self.reverb_prob, self.reverb_rt60 = reverb_prob, tuple(reverb_rt60)
        self.telephone_prob = telephone_prob

    @property
    def active(self) -> bool:
        return max(self.noise_prob, self.reverb_prob, self.telephone_prob) > 0

    def __call__(self, wav: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b = wav.shape[0]
        # draw every decision first, so a clip's draws do not depend on the others' outcomes
        use_reverb = torch.rand(b, generator=g) < self.reverb_prob
        use_phone = torch.rand(b, generator=g) < self.telephone_prob
        use_noise = torch.rand(b, generator=g) < self.noise_prob
        rt60 = _uniform(g, b, *self.reverb_rt60)
        snr = _uniform(g, b, *self.noise_snr_db)
        out = wav
        if use_reverb.any():  # the room first, then the line, then noise at the far end
            out = torch.where(use_reverb[:, None], reverberate(out, rt60, self.sample_rate, g),
                              out)
        if use_phone.any():
            out = torch.where(use_phone[:, None], telephone(out, self.sample_rate), out)
        if use_noise.any():
            out = torch.where(use_noise[:, None], add_noise(out, snr, g), out)
        return out


# The fixed conditions of unit agreement (speechtok eval, the demo report): a clean utterance
# against itself under each. Seeded per utterance, so every model sees the same noise.
DEGRADATIONS = ("noise_10db", "reverb", "band_8khz")


def degrade(wav: torch.Tensor, condition: str, sample_rate: int, seed: int = 0
            ) -> torch.Tensor:
    """`wav` (B, T) under one of DEGRADATIONS: white-to-brown noise at 10 dB SNR; a room of
    RT60 0.5 s; the 8 kHz telephone band (resampled, no μ-law)."""
    g = torch.Generator().manual_seed(seed)
    b = wav.shape[0]
    if condition == "noise_10db":
        return add_noise(wav, torch.full((b,), 10.0), g)
    if condition == "reverb":
        return reverberate(wav, torch.full((b,), 0.5), sample_rate, g)
    if condition == "band_8khz":
        return telephone(wav, sample_rate, mu_law=False)
    raise ValueError(f"unknown degradation {condition!r}; choose from {DEGRADATIONS}")


def unit_agreement(clean_units: torch.Tensor, degraded_units: torch.Tensor) -> float:
    """Share of frames whose unit is the same in both (frame-aligned, same length)."""
    n = min(clean_units.shape[-1], degraded_units.shape[-1])
    if n == 0:
        raise ValueError("no frames to compare")
    return float((clean_units[..., :n] == degraded_units[..., :n]).float().mean())


__all__ = ["DEGRADATIONS", "ChannelAugment", "add_noise", "change_speed", "coloured_noise",
           "degrade", "reverberate", "synthetic_rir", "telephone", "unit_agreement"]
