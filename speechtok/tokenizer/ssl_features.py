"""A self-supervised speech model's layer as features (HuBERT, wav2vec 2.0, WavLM through
transformers), for k-means units (GSLM's speech2unit, Lakhotia et al. 2021).

`hidden_states[L]` of transformers' encoders is the output of transformer layer L (index 0 is
the input of the first layer). A copy saved with only the first L + 1 layers gives the same
`hidden_states[L]` (the last entry would get the final layer norm of pre-norm models, so the
copy keeps one layer beyond L), and is what a k-means tokenizer folder carries.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..hub.loading import quiet_transformers
from .registry import HF_PREFIX


def load_ssl_model(source: str | Path) -> nn.Module:
    """The base model (no task head) of a transformers SSL checkpoint: a Hub name in the local
    cache or a folder written by `save_pretrained`; never custom code."""
    from transformers import AutoModel

    source = str(source)
    source = source[len(HF_PREFIX):] if source.startswith(HF_PREFIX) else source
    try:
        with quiet_transformers():
            model = AutoModel.from_pretrained(source, trust_remote_code=False,
                                              local_files_only=True)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load the SSL model {source!r}: {err}") from None
    for attr in ("feature_extractor", "encoder"):
        if not hasattr(model, attr):
            raise ValueError(f"{source!r} ({type(model).__name__}) is not a wav2vec 2.0-style "
                             "speech model (HuBERT, wav2vec 2.0, WavLM)")
    return model.eval()


def normalizes_input(source: str | Path) -> bool:
    """Whether the checkpoint's feature extractor standardises each utterance (`do_normalize`:
    true for the large HuBERT / wav2vec 2.0 models, false for HuBERT base)."""
    from transformers import AutoFeatureExtractor

    source = str(source)
    source = source[len(HF_PREFIX):] if source.startswith(HF_PREFIX) else source
    try:
        extractor = AutoFeatureExtractor.from_pretrained(source, local_files_only=True)
        return bool(getattr(extractor, "do_normalize", False))
    except (OSError, ValueError):  # no preprocessor_config.json: raw waveform
        return False


def layer_count(model: nn.Module) -> int:
    return len(model.encoder.layers)


def frame_hop(model: nn.Module) -> int:
    """Samples per feature frame: the product of the convolutional front end's strides."""
    return math.prod(model.config.conv_stride)


def receptive_field(model: nn.Module) -> int:
    """Samples the first feature frame sees (400 for HuBERT's front end)."""
    field = 1
    for kernel, stride in zip(reversed(model.config.conv_kernel),
                              reversed(model.config.conv_stride), strict=True):
        field = (field - 1) * stride + kernel
    return field


def keep_layers(model: nn.Module, layer: int) -> nn.Module:
    """The model cut to the layers `hidden_states[layer]` needs (module docstring)."""
    keep = min(layer + 1, layer_count(model))
    model.encoder.layers = model.encoder.layers[:keep]
    model.config.num_hidden_layers = keep
    return model


def check_layer(model: nn.Module, layer: int) -> None:
    n = layer_count(model)
    if not 1 <= layer <= n:
        raise ValueError(f"layer must be between 1 and {n} (the model's transformer layers), "
                         f"got {layer}")


@torch.no_grad()
def layer_features(model: nn.Module, wav: torch.Tensor, layer: int, normalize: bool
                   ) -> torch.Tensor:
    """Waveform `(batch, samples)` at the model's rate → layer `layer`'s features `(batch,
    frames, dim)`, frames = (samples − 400) // 320 + 1 for HuBERT's front end."""
    wav = wav.to(next(model.parameters()).device, torch.float32)
    short = receptive_field(model) - wav.shape[-1]
    if short > 0:  # shorter than one frame's field: padded with silence to give one frame
        wav = torch.nn.functional.pad(wav, (0, short))
    if normalize:  # as the feature extractor would: zero mean, unit variance per utterance
        wav = (wav - wav.mean(-1, keepdim=True)) / torch.sqrt(wav.var(-1, keepdim=True) + 1e-7)
    out = model(wav, output_hidden_states=True)
    return out.hidden_states[layer]
