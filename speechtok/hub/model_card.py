"""The README.md model card saved next to every tokenizer: Hub metadata rendered by
huggingface_hub's `ModelCardData` (library, tags, the names of the metrics measured), then what
the tokenizer is, how to load it, its configuration and its held-out metrics."""

from __future__ import annotations

import json
from pathlib import Path

BODY = """
# {title}

A {description}.

```python
{load}
{usage}
```

## Configuration

```json
{config}
```

## Held-out metrics

{metrics_table}
"""


def _speech(config: dict) -> tuple[str, str, str, str, list[str]]:
    return ("Speech tokenizer", "SpeechTokenizer",
            f"speech VQ-VAE tokenizer: {config['sample_rate']} Hz audio ↔ "
            f"{config['codebook_size']} discrete units, trained with speechtok-lm (stage 1)",
            "units = tok.encode(wav, sample_rate=16000)  # (batch, frames)\n"
            "wav = tok.decode(units)  # (batch, samples) at tok.sample_rate",
            ["speech-tokenizer", "audio", "vq-vae"])


def _image(config: dict) -> tuple[str, str, str, str, list[str]]:
    g = config["resolution"] // config["downsample_factor"]
    return ("Image tokenizer", "ImageTokenizer",
            f"VQGAN image tokenizer: {config['resolution']}×{config['resolution']} RGB "
            f"images ↔ {g}×{g} grids of {config['codebook_size']} codes, trained with "
            "speechtok-lm (stage 1)",
            "grid = tok.encode(images)  # PIL images or (batch, 3, H, W) in [0, 1]\n"
            "images = tok.decode(grid)  # (batch, 3, H, W) in [0, 1]",
            ["image-tokenizer", "vqgan", "vq-vae"])


def _kmeans(config: dict) -> tuple[str, str, str, str, list[str]]:
    return ("Speech units (k-means)", "load_tokenizer",
            f"k-means speech tokenizer (GSLM's speech2unit): layer {config['layer']} of "
            f"{config['features']} ↔ {config['clusters']} units, fitted with speechtok-lm",
            f"units = tok.encode(wav)  # (batch, frames) at {config['sample_rate']} Hz\n"
            "wav = tok.decode(units)  # needs a unit vocoder (speechtok train vocoder)",
            ["speech-tokenizer", "audio", "k-means", "gslm"])


def _pretrained(config: dict) -> tuple[str, str, str, str, list[str]]:
    return ("Pretrained tokenizer", "load_tokenizer",
            f"{config['modality']} tokenizer that points at the pretrained model "
            f"`{config['source']}` ({config['model_type']}, loaded by transformers; its "
            "weights are not in this folder)",
            "codes = tok.encode(media)\nmedia = tok.decode(codes)",
            [f"{config['modality']}-tokenizer", config["model_type"]])


# config.json "kind" → what the card says (title, class, description, usage, tags)
DESCRIBERS = {"speech": _speech, "image": _image, "kmeans": _kmeans, "hf": _pretrained}


def _describe(config: dict) -> tuple[str, str, str, str, list[str]]:
    kind = config.get("kind", "speech")
    if kind in DESCRIBERS:
        return DESCRIBERS[kind](config)
    return "Tokenizer", "load_tokenizer", kind, "", [kind]


def write_model_card(folder: str | Path, config: dict, metrics: dict | None = None,
                     repo: str = "PATH_OR_REPO") -> Path:
    """Write `folder/README.md` for a saved tokenizer with `config` and held-out `metrics`."""
    from huggingface_hub import ModelCard, ModelCardData

    title, cls, description, usage, tags = _describe(config)
    numeric = {k: v for k, v in (metrics or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    # The Hub's metadata spec: `metrics` lists metric names; the values are in the card's table.
    data = ModelCardData(library_name="speechtok-lm", tags=tags + ["speechtok-lm"],
                         metrics=list(numeric) or None)
    table = ("| metric | value |\n|---|---|\n"
             + "\n".join(f"| {k} | {v:.4g} |" for k, v in numeric.items())) if numeric \
        else "Not evaluated yet."
    load = ("from huggingface_hub import snapshot_download\n"
            "from speechtok.tokenizer import load_tokenizer\n"
            f'tok = load_tokenizer(snapshot_download("{repo}"))'
            if cls == "load_tokenizer" else
            f'from speechtok import {cls}\ntok = {cls}.from_pretrained("{repo}")')
    body = BODY.format(title=title, description=description, load=load, repo=repo, usage=usage,
                       config=json.dumps(config, indent=2), metrics_table=table)
    path = Path(folder) / "README.md"
    ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").save(path)
    return path


def write_tokenizer_card(folder: Path) -> Path:
    """The tokenizer model card, with the last validation metrics of `train_history.json`."""
    config = json.loads((folder / "config.json").read_text())
    history = folder / "train_history.json"
    last = json.loads(history.read_text())[-1:] if history.exists() else []
    metrics = {k[len("eval/"):]: v for k, v in (last[0] if last else {}).items()
               if k.startswith("eval/")}
    return write_model_card(folder, config, metrics)
