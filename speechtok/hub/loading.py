"""Loading a local tokenizer folder: strict and quiet (huggingface_hub's mixin prints to stdout,
which would corrupt the JSON that `speechtok encode/eval` print)."""

from __future__ import annotations

import os
from contextlib import contextmanager


class QuietLocalLoading:
    """Load a local folder without the mixin's stdout chatter (which would corrupt the JSON
    that `speechtok encode/eval` print) and strictly (every weight must match); Hub repo ids
    go through the mixin. Put it before `PyTorchModelHubMixin` in the bases."""

    @classmethod
    def _from_pretrained(cls, *, model_id: str, map_location: str = "cpu", strict: bool = True,
                         **kwargs):
        if os.path.isdir(model_id):
            try:
                model = cls(config=kwargs.get("config"))
            except (TypeError, ValueError) as err:  # unknown fields, sizes out of range
                raise ValueError(f"{os.path.join(model_id, 'config.json')}: {err}") from None
            load_weights(model, os.path.join(model_id, "model.safetensors"), map_location,
                         strict)
            return model
        return super()._from_pretrained(model_id=model_id, map_location=map_location,
                                        strict=strict, **kwargs)


def safetensors_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape from a safetensors file's header (nothing else is read); a missing,
    empty, truncated or foreign file is one error naming it."""
    from safetensors import SafetensorError, safe_open

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no weights file")
    try:
        with safe_open(path, "pt") as f:  # checks the header covers the whole file
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a whole safetensors file ({err})") from None


def load_weights(model, path: str, device: str = "cpu", strict: bool = True) -> None:
    """Load safetensors weights into `model`; a missing, truncated or foreign file, or (strict)
    any missing, unexpected or mis-shaped tensor, is one ValueError naming the file and the
    tensors."""
    from safetensors.torch import load_model

    shapes = safetensors_shapes(path)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(k for k in set(expected) & set(shapes) if expected[k] != shapes[k])
    if wrong or (strict and (missing or unexpected)):
        parts = [f"{name} {names[:3]}" + (" …" if len(names) > 3 else "") for name, names in
                 (("missing", missing), ("unexpected", unexpected), ("mis-shaped", wrong))
                 if names]
        raise ValueError(f"{path} does not fit the model its config.json describes: "
                         f"{'; '.join(parts)}")
    load_model(model, path, strict=strict, device=device)


@contextmanager
def quiet_transformers():
    """No "Loading weights" progress bar from transformers while loading a local model."""
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bar:
            hf_logging.enable_progress_bar()
