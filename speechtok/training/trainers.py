"""The models `speechtok train NAME` (and the recipes) can train, by name: each name maps to its
two config dataclasses (the model's, then its training's) and its train function. A new
trainer is its module plus one entry here; `speechtok train NAME --help` then lists its fields.

Train functions take `(data, out, model_config, train_config, resume=..., **options)`; the
vocoder's also the tokenizer folder it decodes for (`tokenizer=`), the k-means fit a
`device=` (and it refuses resume: one run, no checkpoints).
"""

from __future__ import annotations

from importlib import import_module

# name → ((model config class, train config class), train function), "module:attribute" each
TRAINERS: dict[str, tuple[tuple[str, str], str]] = {
    "speech": (("speechtok.speech.configuration:SpeechTokenizerConfig",
                "speechtok.speech.train:SpeechTrainConfig"), "speechtok.speech.train:train_speech"),
    "image": (("speechtok.image.configuration:ImageTokenizerConfig",
               "speechtok.image.train:ImageTrainConfig"), "speechtok.image.train:train_image"),
    "vocoder": (("speechtok.speech.vocoder:VocoderConfig",
                 "speechtok.speech.vocoder_train:VocoderTrainConfig"),
                "speechtok.speech.vocoder_train:train_vocoder"),
    "kmeans": (("speechtok.tokenizer.kmeans_train:KMeansConfig",
                "speechtok.tokenizer.kmeans_train:KMeansTrainConfig"),
               "speechtok.tokenizer.kmeans_train:train_kmeans"),
}


def _resolve(path: str):
    module, name = path.split(":")
    return getattr(import_module(module), name)


def trainer_configs(name: str) -> list[type]:
    """[model config class, train config class] of trainer `name`."""
    if name not in TRAINERS:
        raise ValueError(f"no trainer named {name!r}; known: {', '.join(TRAINERS)}")
    return [_resolve(path) for path in TRAINERS[name][0]]


def trainer(name: str):
    """The train function of trainer `name`."""
    trainer_configs(name)  # the same error for an unknown name
    return _resolve(TRAINERS[name][1])
