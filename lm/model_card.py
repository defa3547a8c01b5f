"""The LM bundle's README.md model card: Hub YAML metadata (library, tags, datasets, the metrics
measured, their values as `model-index`), what the model is, and how to load it.

`library_name: transformers`, because the LM and its tokenizer load with
`AutoModelForCausalLM` / `AutoTokenizer` and no project or remote code; the pipelines that turn
tokens back into images and speech need speechtok-lm. The YAML is rendered by huggingface_hub's
`ModelCardData`, so it follows the Hub's metadata spec (`metrics` is a list of names; values live
in `model-index`). The tokenizers' own cards come from `speechtok.hub.model_card`.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import yaml

from .durations import DURATIONS_FILE
from .pipelines import GENERATION_FILE
from .vocab import LAYOUT_FILE, SPECIALS


def _json(path: Path) -> dict | list | None:
    return json.loads(path.read_text()) if path.exists() else None


def count_parameters(weights: Path) -> int:
    """Parameters in a safetensors file, from its header alone (no tensor is read)."""
    with open(weights, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    total = 0
    for name, info in header.items():
        if name != "__metadata__":
            size = 1
            for d in info["shape"]:
                size *= d
            total += size
    return total


def bundle_metrics(folder: Path, extra: dict | str | Path | None = None) -> dict[str, float]:
    """The last evaluation of `train_history.json` (held-out loss and bits per token by
    modality; token counts left out) updated with `extra` (a dict, or a JSON file of one)."""
    history = _json(folder / "train_history.json") or []
    evals = [h for h in history if any(k.startswith("eval/") for k in h)]
    metrics = {k[len("eval/"):]: v for k, v in (evals[-1] if evals else {}).items()
               if k.startswith("eval/") and not k.startswith("eval/tokens/")}
    if isinstance(extra, (str, Path)):
        extra = json.loads(Path(extra).read_text())
    metrics.update(extra or {})
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _recorded_datasets(folder: Path) -> list[str]:
    """`datasets:` of the card already in the folder, so a refresh keeps what a caller gave."""
    text = (folder / "README.md").read_text() if (folder / "README.md").exists() else ""
    m = re.match(r"^---\s*\n(.*?\n)---", text, re.S)
    meta = yaml.safe_load(m.group(1)) if m else None
    found = meta.get("datasets") if isinstance(meta, dict) else None
    return [found] if isinstance(found, str) else list(found or [])


def card_metadata(datasets: list[str], metrics: dict[str, float], name: str, layout: dict):
    from huggingface_hub import EvalResult, ModelCardData

    tags = ["speechtok-lm", "multimodal"]
    if layout["audio"][1]:
        tags += ["speech", "gslm", "audio-tokens", "speech-continuation"]
    if layout["image"][1]:
        tags += ["text-to-image", "image-tokens", "vq-vae"]
    results = [EvalResult(task_type="text-generation", task_name="held-out next-token loss",
                          dataset_type=datasets[0], dataset_name=datasets[0],
                          dataset_split="validation", metric_type=k, metric_name=k,
                          metric_value=round(v, 6)) for k, v in metrics.items()] \
        if datasets and metrics else None  # model-index needs a dataset to be valid
    return ModelCardData(library_name="transformers", tags=tags, datasets=datasets or None,
                         metrics=list(metrics) or None, model_name=name, eval_results=results)


def _points_at(config: dict) -> str:
    """For a tokenizer folder that points at pretrained weights (speechtok.tokenizer.hf):
    where they are, since they are not in this repo."""
    if config.get("kind") != "hf":
        return ""
    return (f"; a pointer to the pretrained `{config['source']}` ({config['model_type']}, "
            "loaded by transformers: its weights are not in this repo)")


def _describe(folder: Path, layout: dict) -> tuple[str, list[str]]:
    """One line per modality (its token range and tokenizer) and the vocabulary table rows."""
    text_n = layout["text_size"]
    rows = [f"| text (BPE, with the specials {' '.join(SPECIALS.values())}) | 0–{text_n - 1} |"]
    parts = [f"text ({text_n} tokens)"]
    (a_off, a_n), (i_off, i_n) = layout["audio"], layout["image"]
    speech = _json(folder / "speech_tokenizer" / "config.json") or {}
    image = _json(folder / "image_tokenizer" / "config.json") or {}
    if a_n:
        sr = speech.get("sample_rate")
        what = f"speech units `<a_0>`…`<a_{a_n - 1}>`" + (f" from a {sr} Hz speech tokenizer "
                                                         "(`speech_tokenizer/`)" if sr else "")
        what += _points_at(speech)
        rows.append(f"| {what} | {a_off}–{a_off + a_n - 1} |")
        parts.append(f"{a_n} speech units")
    if i_n:
        res, f = image.get("resolution"), image.get("downsample_factor")
        side = res // f if res and f else image.get("grid")
        grid = f"{side}×{side} codes per {res}×{res} image" if res and side else ""
        rows.append(f"| image codes `<i_0>`…`<i_{i_n - 1}>`" + (f" ({grid}, `image_tokenizer/`)"
                                                              if grid else "")
                    + _points_at(image) + f" | {i_off}–{i_off + i_n - 1} |")
        parts.append(f"{i_n} image codes" + (f" ({grid})" if grid else ""))
    return ", ".join(parts), rows


def _facts(folder: Path, config: dict) -> list[str]:
    """Architecture and size lines for the card."""
    arch = (config.get("architectures") or [config.get("model_type", "causal LM")])[0]
    weights = folder / "model.safetensors"
    size = f", {count_parameters(weights) / 1e6:.2f}M parameters" if weights.exists() else ""
    facts = [f"architecture: transformers `{arch}`{size}, {config.get('num_hidden_layers')} "
             f"layers, hidden size {config.get('hidden_size')}",
             f"context: {config.get('max_position_embeddings')} tokens; vocabulary: "
             f"{config.get('vocab_size')} tokens"]
    history = _json(folder / "train_history.json") or []
    if history and "step" in history[-1]:
        facts.append(f"training: {history[-1]['step']} steps (`train_history.json`)")
    return facts


def write_bundle_card(folder: str | Path, datasets: list[str] | None = None,
                      metrics: dict | str | Path | None = None, repo: str | None = None) -> Path:
    """Write `folder/README.md` for an LM bundle (replacing any). `datasets`: Hub dataset ids
    the codes came from (default: those the folder's current card records); `metrics`: more
    measured figures (a dict or a JSON file) besides the last held-out evaluation of training;
    `repo`: the repo id to show in the loading examples."""
    folder = Path(folder)
    layout = _json(folder / LAYOUT_FILE)
    config = _json(folder / "config.json")
    if layout is None or config is None:
        raise FileNotFoundError(f"{folder} is not an LM bundle (needs config.json and "
                                f"{LAYOUT_FILE})")
    datasets = list(datasets) if datasets is not None else _recorded_datasets(folder)
    values = bundle_metrics(folder, metrics)
    where = repo or "PATH_OR_REPO_ID"
    meta = card_metadata(datasets, values, where.rsplit("/", 1)[-1], layout)
    modalities, vocab_rows = _describe(folder, layout)
    facts = _facts(folder, config)
    has_audio, has_image = layout["audio"][1] > 0, layout["image"][1] > 0
    pipes = ", ".join(n for n, on in (("TextToImage", has_image), ("SpeechContinuation",
                                                                   has_audio)) if on)
    usage = ["from huggingface_hub import snapshot_download",
             f"from lm.pipelines import Bundle, {pipes}" if pipes else
             "from lm.pipelines import Bundle", "",
             f'bundle = Bundle(snapshot_download("{where}"))  # a local folder works too']
    cli, spans = [], []
    if has_image:
        usage.append('images = TextToImage(bundle)(["a caption"], num_images=4, seed=0).images'
                     "  # (N, 3, H, W) in [0, 1]")
        cli.append('lm generate image --model DIR --caption "a caption" --out grid.png --num 4 '
                   "--seed 0")
        spans.append("An image is `<boi>` + exactly h×w codes + `<eoi>`, after its caption.")
    if has_audio:
        usage.append("out = SpeechContinuation(bundle)(wav, sample_rate, prompt_seconds=3, "
                     "max_seconds=10, seed=0)  # out.waveforms, out.sample_rate")
        cli.append("lm generate speech --model DIR --prompt prompt.wav --out continued.wav "
                   "--seed 0")
        spans.append(f"Speech is `<boa>` + deduplicated units + `<eoa>`; `{DURATIONS_FILE}` "
                     "holds each unit's mean run length, which gives generated units durations.")
    table = "\n".join(["| metric | value |", "|---|---|",
                       *(f"| {k} | {v:.4g} |" for k, v in values.items())]) if values \
        else "Not evaluated yet."
    sampling = _json(folder / GENERATION_FILE)
    defaults = f" (sampling defaults: `{GENERATION_FILE}`, {json.dumps(sampling)})" \
        if sampling else ""
    nl = "\n"
    body = f"""
# Multimodal token LM: {where.rsplit("/", 1)[-1]}

A causal language model over one token space holding {modalities}. It was trained with
speechtok-lm (stage 2) on the codes of frozen speech / image tokenizers, the VQ-VAE "prior"
scheme; those tokenizers are in this repo too, so one download restores the whole system.

{nl.join(f"- {f}" for f in facts)}

## Vocabulary

| tokens | ids |
|---|---|
{nl.join(vocab_rows)}

{" ".join(spans)}

## How to load

The LM and its tokenizer need no project code and no remote code:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{where}")
tokenizer = AutoTokenizer.from_pretrained("{where}")  # text BPE + <a_N> unit + <i_N> code tokens
```

With speechtok-lm installed, its pipelines turn tokens back into images and
speech{defaults}:

```python
{nl.join(usage)}
```

Command line (after `hf download {where} --local-dir DIR`):

```bash
{nl.join(cli)}
```

## Held-out metrics

{table}
"""
    path = folder / "README.md"
    path.write_text(f"---\n{meta.to_yaml()}\n---\n{body}")
    return path
