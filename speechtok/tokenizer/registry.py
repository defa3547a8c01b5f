"""Tokenizers by name: a saved folder's `kind` (in its config.json), or `hf:NAME_OR_PATH` for a
pretrained model of transformers, to the class that loads it. A new tokenizer is one module
with a class implementing `MediaTokenizer` (with `from_pretrained(folder)`) plus one entry
here."""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path

HF_PREFIX = "hf:"

# config.json "kind" → "module:class", imported on first use
TOKENIZERS: dict[str, str] = {
    "speech": "speechtok.speech.modeling:SpeechTokenizer",
    "image": "speechtok.image.modeling:ImageTokenizer",
    "kmeans": "speechtok.tokenizer.kmeans:KMeansTokenizer",
    "hf": "speechtok.tokenizer.hf:PretrainedTokenizer",
}


def _class(kind: str):
    module, name = TOKENIZERS[kind].split(":")
    return getattr(import_module(module), name)


def tokenizer_kind(path: str | Path) -> str:
    """The `kind` of a saved tokenizer folder (a FileNotFoundError if it is not one)."""
    if str(path).startswith(HF_PREFIX):
        return "hf"
    config = Path(path) / "config.json"
    if not config.exists():
        raise FileNotFoundError(f"{path} is not a saved tokenizer (no config.json)")
    try:
        kind = json.loads(config.read_text()).get("kind", "speech")
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"{config}: not a JSON object ({err})") from None
    if kind not in TOKENIZERS:
        raise ValueError(f"{path}: unknown tokenizer kind {kind!r} in config.json; known: "
                         f"{', '.join(TOKENIZERS)}")
    return kind


def load_tokenizer(spec: str | Path, device: str | None = None, **options):
    """A tokenizer in eval mode: a saved folder (ours, a k-means one, or one `lm tokenize`
    wrote for a pretrained model), or `hf:NAME_OR_PATH` for a transformers codec or image VQ
    (`options`: num_codebooks, resolution, sample_rate; speechtok.tokenizer.hf)."""
    kind = tokenizer_kind(spec)
    if str(spec).startswith(HF_PREFIX):
        tok = _class("hf").from_source(str(spec)[len(HF_PREFIX):], **options)
    else:
        if options:
            raise ValueError(f"{spec}: options {sorted(options)} apply to hf: tokenizers only")
        tok = _class(kind).from_pretrained(str(spec))
    if device is not None:
        tok = tok.to(device)
    return tok.eval()


def add_tokenizer_arguments(parser) -> None:
    """`--tokenizer` and the options of `hf:` tokenizers, for every CLI that loads one."""
    from speechtok.fields import bounded

    parser.add_argument("--tokenizer", required=True,
                        help="a saved tokenizer folder (ours, or k-means units from `speechtok "
                        "train kmeans`), or hf:NAME_OR_PATH for a pretrained codec or image VQ "
                        "of transformers (a Hub name in the local cache, or a folder written "
                        "by save_pretrained): Mimi, EnCodec, DAC, X-codec, X-codec 2, "
                        "Chameleon, Emu3, Janus")
    parser.add_argument("--num-codebooks", type=bounded(int, 1, 64), default=None,
                        help="hf: codecs: codebooks a frame to keep, coarse first "
                        "(default: all)")
    parser.add_argument("--resolution", type=bounded(int, 8, 8192), default=None,
                        help="hf: image VQs: the square side images are resized and cropped to "
                        "(default: the model's)")
    parser.add_argument("--sample-rate", type=bounded(int, 1000, 768_000), default=None,
                        help="hf: codecs whose config names no sampling rate: the rate it was "
                        "trained at (audio is resampled to it)")


def tokenizer_options(args) -> dict:
    """The `hf:` options given on the command line (see `add_tokenizer_arguments`)."""
    return {k: v for k in ("num_codebooks", "resolution", "sample_rate")
            if (v := getattr(args, k, None)) is not None}
