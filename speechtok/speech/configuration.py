"""SpeechTokenizerConfig: everything needed to rebuild a SpeechTokenizer; saved as config.json."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..fields import option
from ..quantization import QuantizerConfig
from .modules import receptive_half_width


@dataclass
class SpeechTokenizerConfig(QuantizerConfig):
    """The speech VQ-VAE: log-mel front end, conv encoder, quantizer (the inherited block),
    conv decoder to a log-mel, Griffin-Lim. Derived figures are properties: `frame_rate`,
    `total_stride`, `bitrate`."""

    kind: str = option("speech", "what the tokenizer is for; always 'speech' here")
    sample_rate: int = option(16000, "sample rate of the model, Hz (inputs are resampled)")
    # Encoder front end: 25 ms / 10 ms log-mel, the standard ASR filterbank.
    n_fft: int = option(400, "encoder front end: FFT size of the log-mel, samples")
    hop_length: int = option(160, "encoder front end: hop of the log-mel, samples")
    n_mels: int = option(80, "encoder front end: mel bins")
    cmn_seconds: float = option(0.0, "sliding mean normalisation window of the log-mel, "
                                "seconds (0 = off)")
    strides: tuple[int, ...] = option((2,), "conv strides after the front end; hop_length x "
                                      "their product = samples per unit (320: 50 Hz)")
    channels: int = option(192, "encoder channels")
    dilations: tuple[int, ...] = option((1, 3, 9), "dilations of the encoder's residual blocks")
    latent_dim: int = option(64, "channels of the latents the quantizer sees")
    codebook_size: int = option(256, "units in the codebook, K (fsq: prod(fsq_levels))")
    codebook_dim: int | None = option(16, "look codes up in this many dimensions after a linear "
                                      "projection (factorised codes); none = latent_dim")
    speaker_dim: int = option(64, "size of the global speaker vector that conditions the "
                              "decoder (0 = none); without a reference, decode uses the mean "
                              "training voice")
    speaker_channels: int = option(128, "channels of the speaker encoder")
    # Decoder: a log-mel at decoder_hop (20 ms: one frame per unit), mapped back to a linear
    # magnitude (filterbank pseudo-inverse) at a 5 ms hop, which Griffin-Lim turns into a wave.
    decoder_mels: int = option(80, "mel bins the decoder predicts")
    decoder_hop: int = option(320, "hop of the predicted log-mel, samples")
    decoder_channels: int = option(256, "decoder channels")
    out_n_fft: int = option(512, "Griffin-Lim: FFT size, samples")
    out_hop: int = option(80, "Griffin-Lim: hop, samples")
    griffin_lim_iters: int = option(64, "Griffin-Lim iterations")
    chunk_seconds: float = option(30.0, "encode audio longer than this in overlapping chunks, "
                                  "seconds")
    chunk_margin_frames: int = option(112, "overlap on each side of a chunk, units (at least "
                                      "the encoder's receptive half-width)")
    loss_weights: dict[str, float] = option({"mel": 1.0, "quantizer": 1.0},
                                            "weight of each training loss term: mel, quantizer")

    def __post_init__(self):
        super().__post_init__()
        self.strides = tuple(int(s) for s in self.strides)
        self.dilations = tuple(int(d) for d in self.dilations)
        if self.kind != "speech":
            raise ValueError(f"kind must be 'speech' here, got {self.kind!r}")
        if any(s < 2 or s % 2 for s in self.strides):
            raise ValueError(f"strides must be even integers ≥ 2, got {self.strides}")
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length {self.hop_length} exceeds n_fft {self.n_fft}")
        for name in ("out_hop", "decoder_hop"):
            up = self.total_stride / getattr(self, name)
            if up != int(up) or int(up) & (int(up) - 1):
                raise ValueError(f"total stride {self.total_stride} / {name} "
                                 f"{getattr(self, name)} must be a power of 2")
        if self.decoder_hop < self.out_hop:
            raise ValueError(f"decoder_hop {self.decoder_hop} must be ≥ out_hop {self.out_hop} "
                             "(the mel is interpolated to Griffin-Lim's finer hop)")
        if self.chunk_margin_frames < receptive_half_width(self):
            raise ValueError(
                f"chunk_margin_frames={self.chunk_margin_frames} is smaller than the encoder's "
                f"receptive half-width {receptive_half_width(self)}: chunked codes would differ"
            )

    @property
    def total_stride(self) -> int:
        return self.hop_length * math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.total_stride

    @property
    def upsample(self) -> int:
        """Decoder (mel) frames per unit."""
        return self.total_stride // self.decoder_hop

    @property
    def bitrate(self) -> float:
        """Nominal bits per second of the unit stream (frames/s × log2 K × codebooks)."""
        return self.frame_rate * math.log2(self.codebook_size) * self.code_depth

    def to_dict(self) -> dict:
        return asdict(self)
