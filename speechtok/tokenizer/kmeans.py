"""k-means units over a self-supervised model's layer: GSLM's speech2unit (Lakhotia et al.
2021: HuBERT base layer 6, 50-200 clusters; TWIST and SpiritLM use 500) as a tokenizer.

A folder (written by `speechtok train kmeans`, speechtok.tokenizer.kmeans_train):

    config.json          {"kind": "kmeans", "features", "layer", "clusters", ...}
    model.safetensors    the centroids (clusters, dim)
    features/            the SSL model cut to the layers it needs (save_pretrained)
    vocoder/             a unit vocoder, once `speechtok train vocoder --tokenizer` trained one

`encode` gives each frame (20 ms for HuBERT) the index of the nearest centroid of its layer-L
features;
`decode` needs the unit vocoder (speechtok.speech.unit_vocoder).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..quantization.kmeans import nearest_code
from .interface import MediaTokenizer, silence_padding
from .layout import CodeLayout
from .ssl_features import layer_features, load_ssl_model

FEATURES_FOLDER = "features"
VOCODER_FOLDER = "vocoder"


class KMeansTokenizer(MediaTokenizer, nn.Module):
    """Speech `(batch, samples)` at `sample_rate` → units `(batch, frames)` (module docstring)."""

    modality = "speech"

    def __init__(self, config: dict, features: nn.Module, centroids: torch.Tensor):
        super().__init__()
        self.config = dict(config)
        self.features = features.eval()
        self.centroids: torch.Tensor
        self.register_buffer("centroids", centroids.float())
        self.vocoder = None  # a unit vocoder (speechtok train vocoder), or none

    @property
    def layout(self) -> CodeLayout:
        c = self.config
        return CodeLayout("speech", c["clusters"], 1, sample_rate=c["sample_rate"],
                          frame_rate=c["sample_rate"] / c["hop"])

    @property
    def sample_rate(self) -> int:
        return self.config["sample_rate"]

    @property
    def frame_rate(self) -> float:
        return self.layout.frame_rate

    @property
    def device(self) -> torch.device:
        return self.centroids.device

    @torch.inference_mode()
    def encode(self, wav: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Waveform `(batch, samples)` (or `(samples,)`, `(batch, channels, samples)`; other
        rates resampled) → units `(batch, frames)`."""
        from speechtok.speech.io import prepare_waveform

        wav = prepare_waveform(wav, sample_rate or self.sample_rate, self.sample_rate)
        feats = layer_features(self.features, wav.to(self.device), self.config["layer"],
                               self.config["normalize"])  # (B, N, D)
        units = nearest_code(feats.flatten(0, 1).float(), self.centroids)
        return units.view(feats.shape[:2])

    @torch.inference_mode()
    def decode(self, units: torch.Tensor, durations: torch.Tensor | None = None,
               speaker: torch.Tensor | None = None) -> torch.Tensor:
        """Units `(batch, frames)` (with GSLM run lengths `durations`) → waveform `(batch,
        frames · hop)` through the unit vocoder; `speaker` is not used (k-means units carry no
        voice vector)."""
        if self.vocoder is None:
            raise ValueError("this k-means tokenizer has no unit vocoder to decode with: train "
                             "one with `speechtok train vocoder --tokenizer FOLDER --data D`")
        from speechtok.speech.units import undedup

        units = self.check_codes(units)
        units = units[None] if units.dim() == 1 else units
        lengths = None
        if durations is not None:
            durations = torch.as_tensor(durations).reshape(units.shape)
            lengths = durations.sum(-1) * self.config["hop"]
            units = undedup(units, durations)
        wav = self.vocoder.to(self.device)(units.to(self.device))
        return silence_padding(wav, lengths)

    def attach_vocoder(self, vocoder) -> None:
        self.vocoder = vocoder

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.features.save_pretrained(folder / FEATURES_FOLDER)
        (folder / "config.json").write_text(json.dumps(self.config, indent=1))
        if self.vocoder is not None:
            self.vocoder.save_pretrained(folder / VOCODER_FOLDER)
        # last: a folder with model.safetensors is whole (what `recipes` check to skip a fit)
        save_file({"centroids": self.centroids.cpu().contiguous()},
                  str(folder / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> KMeansTokenizer:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        try:
            centroids = load_file(str(folder / "model.safetensors"))["centroids"]
        except (OSError, KeyError, SafetensorError) as err:
            raise ValueError(f"{folder / 'model.safetensors'}: no centroids ({err})") from None
        tok = cls(config, load_ssl_model(folder / FEATURES_FOLDER), centroids)
        if (folder / VOCODER_FOLDER / "config.json").exists():
            from speechtok.speech.unit_vocoder import UnitVocoder

            tok.attach_vocoder(UnitVocoder.from_pretrained(str(folder / VOCODER_FOLDER)))
        return tok
