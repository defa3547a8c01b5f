"""How each modality's media are read, batched for an encoder and written: a registry by
modality name. A new modality is one class (items, read, read_bytes, encode, save, evaluate,
and the attributes name, codes_key, suffix, batched) in its own module plus one line here."""

from __future__ import annotations

from importlib import import_module

# modality → "module:class", imported on first use (each pulls in its own I/O stack)
MODALITIES: dict[str, str] = {
    "speech": "speechtok.speech.media:SpeechMedia",
    "image": "speechtok.image.media:ImageMedia",
}


def media_for(modality: str):
    """The media handler of `modality` (an instance)."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
    module, name = MODALITIES[modality].split(":")
    return getattr(import_module(module), name)()
