"""Pre-tokenisation: turn audio and images into tokenizer codes once, so LM training reads ids.

The expensive step (running a speech or image tokenizer over the media) happens here, through
`datasets.map` (cached Arrow files, `num_proc` workers); the cheap step (sample formats and
vocabulary offsets, lm.formats / lm.vocab) happens when training reads the codes, so one
pre-tokenised corpus serves any mixture of formats.

Sharding: process `rank` of `world` encodes the contiguous shard `rank` of every split and
writes `OUT/<split>/shard-<rank>-of-<world>` (under `accelerate launch`, rank and world come
from the launcher and each process uses its own device). `load_codes` concatenates the shards
in rank order, so any number of processes yields the same rows in the same order as one.

Rows: speech `{"name", "text", "units": [int, ...]}` (50 Hz units, not deduplicated: dedup is a
format choice); images `{"name", "text", "alt_texts", "codes": [int, ...]}` (the grid in raster
order; `alt_texts` other captions of the image, often empty) plus `grid_size`.
"""

from __future__ import annotations

import json
from pathlib import Path

_TOKENIZERS: dict[tuple[str, str], object] = {}  # per-process cache for datasets.map workers


def _tokenizer(path: str, device: str):
    key = (path, device)
    if key not in _TOKENIZERS:
        from speechtok.auto import load_tokenizer

        _TOKENIZERS[key] = load_tokenizer(path, device)
    return _TOKENIZERS[key]


def _items(kind: str, data: Path, split: str, tokenizer) -> list[dict]:
    """The media of one split as rows {"name", "text", "alt_texts", "path" or "bytes"};
    `alt_texts` are other captions of the same item (metadata "alt_texts", a list)."""
    if kind == "speech":
        from speechtok.speech.data import open_eval_source

        items = open_eval_source(data, tokenizer.sample_rate, split).items
    else:
        from speechtok.image.data import open_image_eval_source

        items = open_image_eval_source(data, tokenizer.config.resolution, split).items
    return [{"name": it.name, "text": str(it.meta.get("text", "")),
             "alt_texts": [str(t) for t in it.meta.get("alt_texts", []) or []],
             "path": str(it.path) if it.path is not None else None, "bytes": it.data}
            for it in items]


def _encode_batch(batch: dict, kind: str, tokenizer_dir: str, device: str) -> dict:
    import io

    tok = _tokenizer(tokenizer_dir, device)
    out = []
    for path, data, name in zip(batch["path"], batch["bytes"], batch["name"], strict=True):
        if kind == "speech":
            from speechtok.speech.io import decode_audio, load_audio

            wav = load_audio(path, tok.sample_rate) if path is not None else \
                decode_audio(data, tok.sample_rate, name)
            out.append(tok.encode(wav[None])[0].cpu().tolist())
        else:
            from PIL import Image

            from speechtok.image.io import load_image

            out.append(load_image(path) if path is not None else Image.open(io.BytesIO(data)))
    if kind == "image":  # one forward for the whole batch
        out = [g.flatten().tolist() for g in tok.encode(out).cpu()]
    return {"units" if kind == "speech" else "codes": out}


def pretokenize(kind: str, data: str | Path, tokenizer_dir: str | Path, out: str | Path,
                splits: tuple[str, ...] = ("train", "valid", "test"), rank: int = 0,
                world: int = 1, num_proc: int | None = None, device: str = "cpu") -> dict:
    """Encode shard `rank`/`world` of every split of `data` that exists; return row counts."""
    from datasets import Dataset

    if kind not in ("speech", "image"):
        raise ValueError(f"kind must be 'speech' or 'image', got {kind!r}")
    data, out = Path(data), Path(out)
    tok = _tokenizer(str(tokenizer_dir), device)
    if tok.config.kind != kind:
        raise ValueError(f"{tokenizer_dir} is a {tok.config.kind} tokenizer, not {kind}")
    if not data.exists():
        raise FileNotFoundError(f"data not found: {data}")
    from speechtok.splits import is_saved_dataset

    if is_saved_dataset(data):
        from datasets import load_from_disk

        saved = load_from_disk(str(data))
        present = [s for s in splits if s in saved] if hasattr(saved, "keys") else ["all"]
    else:  # split subfolders, or a plain folder of media as one split
        present = [s for s in splits if (data / s).is_dir()] or ["all"]
    counts = {}
    for split in present:
        rows = _items(kind, data, None if split == "all" else split, tok)
        shard = rows[len(rows) * rank // world: len(rows) * (rank + 1) // world]
        ds = Dataset.from_list(shard) if shard else Dataset.from_dict(
            {"name": [], "text": [], "alt_texts": [], "path": [], "bytes": []})
        ds = ds.map(_encode_batch, batched=True, batch_size=16, num_proc=num_proc,
                    fn_kwargs={"kind": kind, "tokenizer_dir": str(tokenizer_dir),
                               "device": device},
                    remove_columns=["path", "bytes"], desc=f"{kind} {split} shard {rank}")
        ds.save_to_disk(str(out / split / f"shard-{rank:05d}-of-{world:05d}"))
        counts[split] = len(ds)
    meta = {"kind": kind, "tokenizer": str(Path(tokenizer_dir).resolve()), "world": world,
            "codebook_size": tok.config.codebook_size}
    if kind == "image":
        meta["grid_size"] = tok.config.grid_size
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "pretokenized.json").write_text(json.dumps(meta, indent=1))
    return counts


def load_codes(out: str | Path, split: str):
    """The rows of `split`, shards concatenated in rank order (a datasets.Dataset)."""
    from datasets import concatenate_datasets, load_from_disk

    folder = Path(out) / split
    shards = sorted(folder.glob("shard-*-of-*"))
    if not shards:
        raise FileNotFoundError(f"no pre-tokenised shards in {folder}")
    worlds = {p.name.rsplit("-of-", 1)[1] for p in shards}
    if len(worlds) != 1 or len(shards) != int(worlds.pop()):
        raise ValueError(f"{folder}: incomplete or mixed shards {[p.name for p in shards]}")
    return concatenate_datasets([load_from_disk(str(p)) for p in shards])
