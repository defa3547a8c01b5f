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
            from safetensors.torch import load_model

            model = cls(config=kwargs.get("config"))
            load_model(model, os.path.join(model_id, "model.safetensors"), strict=strict,
                       device=map_location)
            return model
        return super()._from_pretrained(model_id=model_id, map_location=map_location,
                                        strict=strict, **kwargs)


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
