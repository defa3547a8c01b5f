"""The README.md model card saved next to every tokenizer (Hub YAML metadata + usage)."""

from __future__ import annotations

import json
from pathlib import Path

CARD = """---
library_name: speechtok-lm
tags:
{tags}
{metrics_yaml}---

# {title}

A {description} trained with [speechtok-lm](https://github.com/) stage 1.

```python
from speechtok import {cls}
tok = {cls}.from_pretrained("{repo}")
{usage}
```

## Configuration

```json
{config}
```

## Held-out metrics

{metrics_table}
"""


def write_model_card(folder: str | Path, config: dict, metrics: dict | None = None,
                     repo: str = "PATH_OR_REPO") -> Path:
    """Write `folder/README.md` for a saved tokenizer."""
    metrics = metrics or {}
    kind = config.get("kind", "speech")
    if kind == "speech":
        title, cls = "Speech tokenizer", "SpeechTokenizer"
        description = (f"speech VQ-VAE tokenizer: {config['sample_rate']} Hz audio ↔ "
                       f"{config['codebook_size']} discrete units")
        usage = ("units = tok.encode(wav, sample_rate=16000)  # (batch, frames)\n"
                 "wav = tok.decode(units)  # (batch, samples) at tok.sample_rate")
        tags = ["speech-tokenizer", "audio", "vq-vae"]
    elif kind == "image":
        title, cls = "Image tokenizer", "ImageTokenizer"
        g = config["resolution"] // config["downsample_factor"]
        description = (f"VQGAN image tokenizer: {config['resolution']}×{config['resolution']} RGB "
                       f"images ↔ {g}×{g} grids of {config['codebook_size']} codes")
        usage = ("grid = tok.encode(images)  # PIL images or (batch, 3, H, W) in [0, 1]\n"
                 "images = tok.decode(grid)  # (batch, 3, H, W) in [0, 1]")
        tags = ["image-tokenizer", "vqgan", "vq-vae"]
    else:
        title, cls, description, usage, tags = "Tokenizer", "load_tokenizer", kind, "", [kind]
    numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    # the Hub's metadata spec: `metrics` lists metric names; the values are in the card's table
    metrics_yaml = "".join(f"- {k}\n" for k in numeric)
    text = CARD.format(
        tags="".join(f"- {t}\n" for t in tags + ["speechtok-lm"]).rstrip("\n"),
        metrics_yaml=("metrics:\n" + metrics_yaml) if metrics_yaml else "",
        title=title, description=description, cls=cls, repo=repo, usage=usage,
        config=json.dumps(config, indent=2),
        metrics_table="\n".join(f"| {k} | {v:.4g} |" for k, v in numeric.items()) and
        "| metric | value |\n|---|---|\n" + "\n".join(
            f"| {k} | {v:.4g} |" for k, v in numeric.items()) or "Not evaluated yet.",
    )
    path = Path(folder) / "README.md"
    path.write_text(text)
    return path
