"""Load whichever tokenizer a saved folder holds, by the `kind` in its config.json."""

from __future__ import annotations

import json
from pathlib import Path


def tokenizer_kind(path: str | Path) -> str:
    config = Path(path) / "config.json"
    if not config.exists():
        raise FileNotFoundError(f"{path} is not a saved tokenizer (no config.json)")
    return json.loads(config.read_text()).get("kind", "speech")


def load_tokenizer(path: str | Path, device: str | None = None):
    """A saved SpeechTokenizer or ImageTokenizer, in eval mode."""
    kind = tokenizer_kind(path)
    if kind == "speech":
        from speechtok.speech import SpeechTokenizer

        model = SpeechTokenizer.from_pretrained(str(path))
    elif kind == "image":
        from speechtok.image import ImageTokenizer

        model = ImageTokenizer.from_pretrained(str(path))
    else:
        raise ValueError(f"{path}: unknown tokenizer kind {kind!r} in config.json")
    if device is not None:
        model = model.to(device)
    return model.eval()
