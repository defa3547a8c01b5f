"""Pretrained codecs and image VQs of transformers as tokenizers: `hf:NAME_OR_PATH`.

    lm tokenize --tokenizer hf:kyutai/mimi --num-codebooks 8 --data corpus/ --out codes/

The weights come from a local folder written by `save_pretrained`, or a Hub repo already in
the local cache (`hf download NAME` puts it there): nothing is downloaded at run time.
The family (speechtok.tokenizer.hf_families) comes from the `model_type` of the
model's config.json. `save_pretrained(folder)` writes a small folder that points at those
weights ({"kind": "hf", "source", options}): what `lm tokenize` keeps beside the codes and
`lm train` copies into a bundle, so `lm generate`, `lm serve` and `lm push` find the tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .hf_families import FAMILIES
from .interface import MediaTokenizer, silence_padding
from .layout import CodeLayout

# a multimodal LM's repo whose image VQ is the tokenizer: its model type → the VQ's
FULL_MODELS = {"chameleon": "chameleon_vqgan", "janus": "janus_vqgan", "emu3": "emu3_vqgan"}


def _vq_of_full_model(source: str, model_type: str) -> nn.Module:
    """The image VQ inside a Chameleon / Janus / Emu3 checkpoint, built from its `vq_config`
    with only the `*.vqmodel.*` tensors read from the safetensors shards (not the LM's)."""
    import transformers
    from safetensors import safe_open
    from transformers import AutoConfig
    from transformers.utils import cached_file

    config = AutoConfig.from_pretrained(source, local_files_only=True, trust_remote_code=False)
    vq = getattr(transformers, FAMILIES[FULL_MODELS[model_type]].model_class)(config.vq_config)
    index = cached_file(source, "model.safetensors.index.json", local_files_only=True,
                        _raise_exceptions_for_missing_entries=False)
    if index:
        shards = sorted({f for k, f in json.loads(Path(index).read_text())["weight_map"].items()
                         if ".vqmodel." in k})
    else:
        shards = ["model.safetensors"]
    state = {}
    for shard in shards:
        path = cached_file(source, shard, local_files_only=True)
        with safe_open(path, "pt") as f:
            for key in f.keys():
                if ".vqmodel." in key:
                    state[key.split(".vqmodel.", 1)[1]] = f.get_tensor(key)
    expected = set(vq.state_dict())
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"hf:{source}: its image VQ's weights do not match {type(vq).__name__}"
                         f" (missing {missing[:3]}, unexpected {extra[:3]})")
    vq.load_state_dict(state)
    return vq.eval()


def _model_type(source: str) -> str:
    from transformers.utils import cached_file

    try:
        path = cached_file(source, "config.json", local_files_only=True)
    except OSError as err:
        raise ValueError(f"hf:{source}: no config.json in that folder or in the local Hub cache "
                         f"({err})") from None
    return json.loads(Path(path).read_text()).get("model_type", "")


class PretrainedTokenizer(MediaTokenizer, nn.Module):
    """A transformers codec (speech) or image VQ behind the tokenizer interface."""

    def __init__(self, source: str, model: nn.Module, model_type: str,
                 num_codebooks: int | None = None, resolution: int | None = None,
                 sample_rate: int | None = None):
        super().__init__()
        self.source_name, self.model_type = source, model_type
        self.family = FAMILIES[model_type]
        self.model = model.eval()
        self.modality = self.family.modality
        config = model.config
        if self.modality == "speech":
            total = self.family.total_codebooks(config)
            self.num_codebooks = num_codebooks or total
            if not 1 <= self.num_codebooks <= total:
                raise ValueError(f"hf:{source} has {total} codebooks; --num-codebooks must be "
                                 f"between 1 and {total}, got {num_codebooks}")
            rate = getattr(config, "sampling_rate", None) or getattr(config, "sample_rate", None)
            if rate and sample_rate and int(sample_rate) != int(rate):
                raise ValueError(f"hf:{source} was trained at {rate} Hz; --sample-rate is for "
                                 f"codecs whose config names no rate, got {sample_rate}")
            self.rate = int(rate or sample_rate or 0)
            if not self.rate:
                raise ValueError(f"hf:{source}: its config names no sampling rate; give "
                                 "--sample-rate")
            self.hop = self.family.hop(model)
        else:
            self.num_codebooks = 1
            factor = self.family.factor(config)
            self.resolution = int(resolution or self.family.resolution(config))
            if self.resolution % factor:
                raise ValueError(f"hf:{source}: the resolution must be a multiple of the "
                                 f"model's downsampling factor {factor}, got {self.resolution}")
            self.grid = self.resolution // factor

    @classmethod
    def from_source(cls, source: str, num_codebooks: int | None = None,
                    resolution: int | None = None, sample_rate: int | None = None
                    ) -> PretrainedTokenizer:
        import transformers

        from ..hub.loading import quiet_transformers

        model_type = _model_type(source)
        if model_type in FULL_MODELS:  # the VQ inside a multimodal LM's checkpoint
            model = _vq_of_full_model(source, model_type)
            return cls(source, model, FULL_MODELS[model_type], num_codebooks, resolution,
                       sample_rate)
        if model_type not in FAMILIES:
            raise ValueError(f"hf:{source}: model type {model_type!r} is not a tokenizer this "
                             f"toolkit adapts (known: {', '.join([*FAMILIES, *FULL_MODELS])})")
        model_class = getattr(transformers, FAMILIES[model_type].model_class)
        with quiet_transformers():
            model = model_class.from_pretrained(source, trust_remote_code=False,
                                                 local_files_only=True)
        return cls(source, model, model_type, num_codebooks, resolution, sample_rate)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> PretrainedTokenizer:
        """Load what a folder written by `save_pretrained` points at."""
        config = json.loads((Path(folder) / "config.json").read_text())
        return cls.from_source(config["source"], config.get("num_codebooks"),
                               config.get("resolution"), config.get("sample_rate"))

    def save_pretrained(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        local = Path(self.source_name)
        source = str(local.resolve()) if local.is_dir() else self.source_name
        config = {"kind": "hf", "source": source, "model_type": self.model_type,
                  "modality": self.modality, **self.layout.to_dict()}
        for key in ("codebook_size", "deduplicate"):
            config.pop(key, None)
        if self.modality == "speech":
            config["num_codebooks"] = self.num_codebooks
        (folder / "config.json").write_text(json.dumps(config, indent=1))

    @property
    def decodes(self) -> bool:
        return self.modality == "speech" or self.family.decodes

    @property
    def source(self) -> str:
        return self.source_name

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def layout(self) -> CodeLayout:
        size = self.family.codebook_size(self.model.config)
        if self.modality == "speech":
            return CodeLayout("speech", size, self.num_codebooks, sample_rate=self.rate,
                              frame_rate=self.rate / self.hop, deduplicate=False)
        return CodeLayout("image", size, 1, resolution=self.resolution, grid=self.grid)

    @property
    def sample_rate(self) -> int:
        return self.rate

    @torch.inference_mode()
    def encode(self, media: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Speech `(batch, samples)` → `(batch, codebooks, frames)` (`(batch, frames)` with one
        codebook); images `(batch, 3, H, W)` in [0, 1] → `(batch, h, w)`."""
        if self.modality == "image":
            from speechtok.image.io import prepare_images

            pixels = prepare_images(media, self.resolution).to(self.device) * 2 - 1
            return self.family.encode(self.model, pixels.to(self.model.dtype))
        from speechtok.speech.io import prepare_waveform

        wav = prepare_waveform(media, sample_rate or self.rate, self.rate).to(
            self.device, self.model.dtype)
        codes = self.family.encode(self.model, wav[:, None], self.num_codebooks)
        return codes[:, 0] if self.num_codebooks == 1 else codes

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor, durations: torch.Tensor | None = None,
               speaker: torch.Tensor | None = None) -> torch.Tensor:
        """The inverse of `encode`: waveforms `(batch, frames · hop)` or images `(batch, 3, H,
        W)` in [0, 1]. `durations` expands run lengths (one per code frame); `speaker` is not
        used: a codec keeps the voice in its codes."""
        codes = self.check_codes(codes).to(self.device)
        if self.modality == "image":
            codes = codes[None] if codes.dim() == 2 else codes
            return ((self.family.decode(self.model, codes).float() + 1) / 2).clamp(0, 1)
        if codes.dim() == 1 or (codes.dim() == 2 and self.num_codebooks > 1):
            codes = codes[None]  # one item: (frames,) or (codebooks, frames)
        lengths = None
        if durations is not None:
            from speechtok.speech.units import undedup

            durations = torch.as_tensor(durations).reshape(codes.shape[0], codes.shape[-1])
            lengths = durations.sum(-1) * self.hop
            codes = undedup(codes, durations) if codes.dim() == 2 else torch.stack(
                [undedup(c, durations) for c in codes.transpose(0, 1)], 1)
        if codes.dim() == 2:  # one codebook
            codes = codes[:, None]
        wav = self.family.decode(self.model, codes).float()
        return silence_padding(wav[..., : codes.shape[-1] * self.hop], lengths)
