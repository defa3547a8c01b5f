"""Loading a local tokenizer folder: strict and quiet (huggingface_hub's mixin prints to stdout,
which would corrupt the JSON that `speechtok encode/eval` print)."""

from __future__ import annotations

import os


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
