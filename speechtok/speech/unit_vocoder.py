"""A unit vocoder: discrete units `(batch, frames)` → waveform, for tokenizers whose codes have
no decoder of their own (k-means units over a self-supervised layer, GSLM's setting, where
Lakhotia et al. 2021 use Tacotron 2 and Polyak et al. 2021 a unit HiFi-GAN).

Each unit is embedded (a learned table, as the unit HiFi-GAN's lookup) and the Vocos network
of speechtok.speech.vocoder turns the embeddings, one frame a unit, into the complex spectrum
whose inverse STFT is the waveform; it learns from (units, waveform) pairs of the training
audio (`speechtok train vocoder --tokenizer KMEANS_FOLDER`, speechtok.speech.vocoder_train).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..fields import option
from .vocoder import Vocoder, VocoderConfig


@dataclass
class UnitVocoderConfig(VocoderConfig):
    """The Vocos network of VocoderConfig on unit embeddings: `input_mels` is the embedding
    size, `hop` the samples of one unit frame."""

    kind: str = option("unit_vocoder", "what the model is; always 'unit_vocoder' here")
    units: int = option(100, "number of distinct units (the tokenizer's codebook size)")

    def __post_init__(self):
        if self.kind != "unit_vocoder":
            raise ValueError(f"kind must be 'unit_vocoder' here, got {self.kind!r}")
        if self.units < 2:
            raise ValueError(f"units must be ≥ 2, got {self.units}")
        self.kind = "vocoder"  # VocoderConfig's own checks
        try:
            super().__post_init__()
        finally:
            self.kind = "unit_vocoder"


class UnitVocoder(Vocoder):
    """Units `(batch, frames)` → waveform `(batch, frames * hop)`."""

    def __init__(self, config: UnitVocoderConfig | dict | None = None):
        if config is None:
            config = UnitVocoderConfig()
        elif isinstance(config, dict):
            config = UnitVocoderConfig(**config)
        super().__init__(config)
        self.unit_embed = nn.Embedding(config.units, config.input_mels)

    def forward(self, units: torch.Tensor) -> torch.Tensor:
        return super().forward(self.unit_embed(units).transpose(1, 2))
