"""What differs between the pretrained tokenizers of transformers: how each family's model is
built, how many codebooks it has and how it encodes and decodes. One class a family and one
line in `FAMILIES` (keyed by the `model_type` of its config.json) adds one."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch


class SpeechCodec(ABC):
    """A neural audio codec: waveform `(batch, 1, samples)` ↔ codes `(batch, codebooks,
    frames)`, several codebooks a frame (residual VQ), coarse first."""

    modality = "speech"
    model_class = ""

    def total_codebooks(self, config) -> int:
        return int(config.num_quantizers)

    def codebook_size(self, config) -> int:
        return int(config.codebook_size)

    def hop(self, model) -> int:
        return math.prod(model.config.upsampling_ratios)

    @abstractmethod
    def encode(self, model, wav: torch.Tensor, codebooks: int) -> torch.Tensor:
        """`wav` (batch, 1, samples) → codes (batch, codebooks, frames)."""

    def decode(self, model, codes: torch.Tensor) -> torch.Tensor:
        return model.decode(codes).audio_values[:, 0]


class Mimi(SpeechCodec):
    """Kyutai's Mimi (Défossez et al. 2024, Moshi): 24 kHz, 12.5 Hz, a semantic codebook first."""

    model_class = "MimiModel"

    def hop(self, model) -> int:
        return round(model.config.sampling_rate / model.config.frame_rate)

    def encode(self, model, wav, codebooks):
        return model.encode(wav, num_quantizers=codebooks).audio_codes


class Encodec(SpeechCodec):
    """EnCodec (Défossez et al. 2022): codebooks follow from the bandwidth, so the smallest
    target bandwidth with enough of them is used and the codes cut to `codebooks`."""

    model_class = "EncodecModel"

    def _per_codebook(self, config) -> float:
        frame_rate = config.sampling_rate / math.prod(config.upsampling_ratios)
        return frame_rate * math.log2(config.codebook_size) / 1000  # kbps a codebook

    def total_codebooks(self, config) -> int:
        return int(max(config.target_bandwidths) / self._per_codebook(config))

    def encode(self, model, wav, codebooks):
        per = self._per_codebook(model.config)
        bandwidth = min(b for b in model.config.target_bandwidths if int(b / per) >= codebooks)
        out = model.encode(wav, bandwidth=bandwidth)
        if out.audio_codes.shape[0] != 1 or out.audio_scales[0] is not None:
            raise ValueError("EnCodec models that encode in normalised chunks (the 48 kHz one) "
                             "are not supported: their codes need the chunks' scales")
        return out.audio_codes[0, :, :codebooks]

    def decode(self, model, codes):
        return model.decode(codes[None], [None]).audio_values[:, 0]


class Dac(SpeechCodec):
    """DAC, the Descript audio codec (Kumar et al. 2023)."""

    model_class = "DacModel"

    def total_codebooks(self, config) -> int:
        return int(config.n_codebooks)

    def hop(self, model) -> int:
        return math.prod(model.config.downsampling_ratios)

    def encode(self, model, wav, codebooks):
        return model.encode(wav, n_quantizers=codebooks).audio_codes[:, :codebooks]

    def decode(self, model, codes):
        return model.decode(audio_codes=codes).audio_values


class Xcodec(SpeechCodec):
    """X-codec (Ye et al. 2024): acoustic and semantic (HuBERT) features into one residual VQ;
    codebooks follow from the bandwidth as in EnCodec."""

    model_class = "XcodecModel"

    def total_codebooks(self, config) -> int:
        per = config.frame_rate * math.log2(config.codebook_size) / 1000
        return int(max(config.target_bandwidths) / per)

    def hop(self, model) -> int:
        return int(model.config.hop_length)

    def encode(self, model, wav, codebooks):
        per = model.config.frame_rate * math.log2(model.config.codebook_size) / 1000
        bandwidth = min(b for b in model.config.target_bandwidths if int(b / per) >= codebooks)
        return model.encode(wav, bandwidth=bandwidth).audio_codes[:, :codebooks]


class Xcodec2(SpeechCodec):
    """X-codec 2 (Ye et al. 2025, Llasa): one FSQ codebook of 4^8 codes at 50 Hz from acoustic
    and w2v-BERT semantic features; the semantic input is the feature extractor's log-mel,
    computed here with transformers' Xcodec2FeatureExtractor at the model's rate and hop."""

    model_class = "Xcodec2Model"

    def total_codebooks(self, config) -> int:
        return 1

    def codebook_size(self, config) -> int:
        return math.prod(config.quantization_levels)

    def hop(self, model) -> int:
        return int(model.config.hop_length)

    def encode(self, model, wav, codebooks):
        from transformers import Xcodec2FeatureExtractor

        rate = model.config.sampling_rate
        extract = Xcodec2FeatureExtractor(sampling_rate=rate, hop_length=self.hop(model))
        inputs = extract([w.float().cpu().numpy() for w in wav[:, 0]], sampling_rate=rate,
                         return_tensors="pt")
        device, dtype = wav.device, wav.dtype
        out = model.encode(inputs["input_values"].to(device, dtype),
                           inputs["input_features"].to(device, dtype),
                           input_features_mask=inputs["input_features_mask"].to(device))
        return out.audio_codes.long()


class ImageVQ:
    """A VQGAN image tokenizer: pixels `(batch, 3, R, R)` in [-1, 1] ↔ a code grid `(batch,
    R/f, R/f)`, f = 2^(len(channel_multiplier) − 1)."""

    modality = "image"
    model_class = ""
    decodes = True

    def codebook_size(self, config) -> int:
        return int(config.num_embeddings)

    def factor(self, config) -> int:
        return 2 ** (len(config.channel_multiplier) - 1)

    def resolution(self, config) -> int:
        return int(config.resolution)

    def encode(self, model, pixels: torch.Tensor) -> torch.Tensor:
        side = pixels.shape[-1] // self.factor(model.config)
        return model.encode(pixels).image_tokens.view(len(pixels), side, side)

    def decode(self, model, grid: torch.Tensor) -> torch.Tensor:
        return model.decode(grid.flatten(1))


class ChameleonVQ(ImageVQ):
    """Chameleon's image VQ (Chameleon Team 2024): transformers ships its encoder only."""

    model_class = "ChameleonVQVAE"
    decodes = False

    def decode(self, model, grid):
        raise ValueError("transformers ships no decoder for Chameleon's image VQ (the released "
                         "weights have none): its codes can be modelled but not drawn")


class JanusVQ(ImageVQ):
    """Janus's image VQ (Wu et al. 2024, after LlamaGen): a square grid of num_patches."""

    model_class = "JanusVQVAE"

    def resolution(self, config) -> int:
        return int(config.num_patches) * self.factor(config)


class Emu3VQ(ImageVQ):
    """Emu3's image VQ (Wang et al. 2024, MoVQGAN-style, images as one-frame videos)."""

    model_class = "Emu3VQVAE"

    def codebook_size(self, config) -> int:
        return int(config.codebook_size)

    def resolution(self, config) -> int:
        return 512  # any multiple of the factor works; Emu3 tokenizes images of ~512²

    def encode(self, model, pixels):
        sizes = torch.tensor([pixels.shape[-2:]] * len(pixels))
        return torch.stack(model.encode(pixels, image_sizes=sizes).image_tokens)

    def decode(self, model, grid):
        return model.decode(grid)


# config.json "model_type" → family
FAMILIES = {"mimi": Mimi(), "encodec": Encodec(), "dac": Dac(), "xcodec": Xcodec(),
            "xcodec2": Xcodec2(),
            "chameleon_vqgan": ChameleonVQ(), "janus_vqgan": JanusVQ(), "emu3_vqgan": Emu3VQ()}
