"""Pre-tokenisation: turn audio and images into tokenizer codes once, so LM training reads ids.

The expensive step (running a speech or image tokenizer over the media) happens here; the cheap
step (sample formats and vocabulary offsets, lm.formats / lm.vocab) happens when training reads
the codes, so one pre-tokenised corpus serves any mixture of formats.

Throughput: `DataLoader` worker processes read, decode, resample (audio) or resize and crop
(images) ahead of the encoder, which runs in this process on its device (CUDA when present).
Images are encoded `batch_size` at a time. Speech is encoded one utterance at a time, each in one
pass over all its frames: padding utterances to a common length would change the codes of their
last frames (the encoder's receptive field would see the padding), and the codes must equal
the tokenizer's `encode` of each file.

Sharding: process `rank` of `world` encodes the contiguous shard `rank` of every split into
`OUT/<split>/shard-<rank>-of-<world>/`, written as chunks of `chunk_rows` rows
(`chunk-00000`, …; each saved under a temporary name and renamed when whole) and closed by
`complete.json`. A killed run started again with the same arguments skips the chunks that are
whole and goes on from the one it stopped in. `load_codes` concatenates the shards in rank order,
so any number of processes yields the same rows in the same order as one.

Rows: speech `{"name", "text", "units": [int, ...]}` (at the tokenizer's frame rate, not
deduplicated: dedup is a format choice); images `{"name", "text", "alt_texts", "codes":
[int, ...]}` (the grid in raster order; `alt_texts` other captions of the image, often empty)
plus `grid_size`. Several
codes a position (`code_depth` in the metadata) are stored depth-first, a hierarchy's grids
(`code_segments`) one after the other, coarse first (speechtok.tokenizer.layout).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

SHARD_META = "shard.json"  # the shard's rows and chunking, written first (checked on resume)
COMPLETE = "complete.json"  # written last: the shard is whole


def _items(media, data: Path, split: str | None, layout) -> list[dict]:
    """The media of one split as rows {"name", "text", "alt_texts", "path" or "bytes"};
    `alt_texts` are other captions of the same item (metadata "alt_texts", a list)."""
    return [{"name": it.name, "text": str(it.meta.get("text", "")),
             "alt_texts": [str(t) for t in it.meta.get("alt_texts", []) or []],
             "path": str(it.path) if it.path is not None else None, "bytes": it.data}
            for it in media.items(data, split, layout)]


class DecodedMedia(Dataset):
    """Item i: row i's media decoded to the encoder's input, in a loader worker (a waveform
    at the tokenizer's sample rate, an image at its resolution: speechtok.tokenizer.media)."""

    def __init__(self, rows: list[dict], media, layout):
        self.rows, self.media, self.layout = rows, media, layout

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        row = self.rows[i]
        if row["path"] is not None:
            return self.media.read(row["path"], self.layout)
        return self.media.read_bytes(row["bytes"], row["name"], self.layout)


def _as_list(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    return batch  # utterances differ in length: no stacking


@torch.inference_mode()
def _encode_chunk(rows: list[dict], media, tok, batch_size: int, num_workers: int
                  ) -> list[list[int]]:
    """The codes of `rows`, in order, flat (CodeLayout.flatten): workers decode, this process
    encodes on the device."""
    layout = tok.layout
    loader = DataLoader(DecodedMedia(rows, media, layout),
                        batch_size=batch_size if media.batched else 1,
                        num_workers=num_workers, collate_fn=_as_list,
                        prefetch_factor=4 if num_workers else None)
    out: list[list[int]] = []
    for batch in loader:
        out += [layout.flatten(codes).tolist() for codes in media.encode(tok, batch)]
    return out


def _start_shard(folder: Path, n_rows: int, chunk_rows: int, source: dict) -> None:
    """Create the shard folder, or check that a partial one was started with the same rows and
    chunking (otherwise its chunks would not line up)."""
    meta = {"rows": n_rows, "chunk_rows": chunk_rows, **source}
    meta_file = folder / SHARD_META
    if meta_file.exists():
        old = json.loads(meta_file.read_text())
        if old != meta:
            raise ValueError(f"{folder} holds a partial run with other settings ({old}, now "
                             f"{meta}); delete it or run with the same data, tokenizer and "
                             "--chunk-rows")
        return
    if folder.exists():  # an older layout, or something else: not ours to resume
        raise ValueError(f"{folder} exists but is not a shard of this command; delete it")
    folder.mkdir(parents=True)
    meta_file.write_text(json.dumps(meta, indent=1))


def _write_chunk(folder: Path, index: int, rows: list[dict], key: str, codes: list[list[int]]
                 ) -> None:
    """Save one chunk under a temporary name and rename it: a chunk folder is always whole."""
    from datasets import Dataset as ArrowDataset

    columns = {"name": [r["name"] for r in rows], "text": [r["text"] for r in rows],
               "alt_texts": [r["alt_texts"] for r in rows], key: codes}
    tmp = folder / f"chunk-{index:05d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    ArrowDataset.from_dict(columns).save_to_disk(str(tmp))
    tmp.rename(folder / f"chunk-{index:05d}")


def _encode_shard(rows: list[dict], media, tok, folder: Path, chunk_rows: int,
                  batch_size: int, num_workers: int, source: dict, desc: str,
                  chunk_budget: list[int] | None) -> bool:
    """Encode one shard's rows into `folder`, skipping whole chunks; False if stopped early."""
    _start_shard(folder, len(rows), chunk_rows, source)  # a finished one must match too
    if (folder / COMPLETE).exists():
        return True
    starts = range(0, len(rows), chunk_rows)
    todo = [i for i, _ in enumerate(starts) if not (folder / f"chunk-{i:05d}").exists()]
    done_rows = len(rows) - sum(len(rows[starts[i]: starts[i] + chunk_rows]) for i in todo)
    with tqdm(total=len(rows), initial=done_rows, desc=desc, unit="item") as bar:
        for i in todo:
            if chunk_budget is not None:
                if chunk_budget[0] <= 0:
                    return False
                chunk_budget[0] -= 1
            chunk = rows[starts[i]: starts[i] + chunk_rows]
            _write_chunk(folder, i, chunk, media.codes_key,
                         _encode_chunk(chunk, media, tok, batch_size, num_workers))
            bar.update(len(chunk))
    (folder / COMPLETE).write_text(json.dumps({"rows": len(rows), "chunks": len(starts)}))
    return True


def pretokenize(kind: str | None, data: str | Path, tokenizer_dir: str | Path, out: str | Path,
                splits: tuple[str, ...] = ("train", "valid", "test"), rank: int = 0,
                world: int = 1, num_workers: int = 0, device: str = "cpu",
                batch_size: int = 64, chunk_rows: int = 2000,
                stop_after_chunks: int | None = None,
                tokenizer_options: dict | None = None) -> dict:
    """Encode shard `rank`/`world` of every split of `data` that exists; return row counts.
    `kind`: the modality of `data` (None: the tokenizer's).

    `tokenizer_dir`: a saved tokenizer folder, or `hf:NAME_OR_PATH` for a pretrained codec or
    image VQ of transformers (with `tokenizer_options`, e.g. num_codebooks); its folder
    (`OUT/tokenizer/`, which points at the pretrained weights) is what `lm train` copies into
    the bundle. `num_workers` loader processes decode ahead of the encoder; images are encoded
    `batch_size` at a time; the output is written in chunks of `chunk_rows` rows, and a run
    started again after a kill resumes at the first chunk that is not whole.
    `stop_after_chunks`: write at most this many chunks, then return (an interrupted run, for
    tests); the counts then say "incomplete"."""
    from speechtok.splits import is_saved_dataset
    from speechtok.tokenizer import load_tokenizer, media_for

    if chunk_rows < 1 or batch_size < 1 or num_workers < 0:
        raise ValueError(f"chunk_rows and batch_size must be ≥ 1 and num_workers ≥ 0, got "
                         f"{chunk_rows}, {batch_size}, {num_workers}")
    data, out = Path(data), Path(out)
    if not data.exists():
        raise FileNotFoundError(f"data not found: {data}")
    options = dict(tokenizer_options or {})
    tok = load_tokenizer(str(tokenizer_dir), device, **options)
    kind = kind or tok.modality
    if tok.modality != kind:
        raise ValueError(f"{tokenizer_dir} is a {tok.modality} tokenizer, not {kind}")
    media, layout = media_for(tok.modality), tok.layout
    if is_saved_dataset(data):
        from datasets import load_from_disk

        saved = load_from_disk(str(data))
        present = [s for s in splits if s in saved] if hasattr(saved, "keys") else ["all"]
    else:  # split subfolders, or a plain folder of media as one split
        present = [s for s in splits if (data / s).is_dir()] or ["all"]
    folder_spec = Path(tokenizer_dir).is_dir()
    source = {"data": str(data.resolve()),
              "tokenizer": str(Path(tokenizer_dir).resolve()) if folder_spec else
              str(tokenizer_dir), **({"tokenizer_options": options} if options else {})}
    budget = None if stop_after_chunks is None else [stop_after_chunks]
    counts: dict[str, int | str] = {}
    for split in present:
        rows = _items(media, data, None if split == "all" else split, layout)
        shard = rows[len(rows) * rank // world: len(rows) * (rank + 1) // world]
        folder = out / split / f"shard-{rank:05d}-of-{world:05d}"
        whole = _encode_shard(shard, media, tok, folder, chunk_rows, batch_size, num_workers,
                              source, f"{kind} {split} shard {rank}", budget)
        counts[split] = len(shard) if whole else "incomplete"
        if not whole:
            return counts
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if not folder_spec:  # a pretrained tokenizer: a folder that says where it comes from
            tok.save_pretrained(out / "tokenizer")
        saved_at = source["tokenizer"] if folder_spec else str((out / "tokenizer").resolve())
        meta = {"kind": kind, "tokenizer": saved_at, "world": world,
                "codebook_size": layout.codebook_size, "code_depth": layout.depth,
                "deduplicated": layout.deduplicated,
                "layout": layout.to_dict()}
        if layout.grid:
            meta["grid_size"] = layout.grid
        if layout.segments:  # a hierarchy of grids: codes of each, coarse first
            meta["code_segments"] = list(layout.segments)
        (out / "pretokenized.json").write_text(json.dumps(meta, indent=1))
    return counts


def _load_shard(folder: Path):
    from datasets import concatenate_datasets, load_from_disk

    if (folder / "dataset_info.json").exists():  # written whole by earlier versions
        return load_from_disk(str(folder))
    if not (folder / COMPLETE).exists():
        raise ValueError(f"{folder} is incomplete (a killed `lm tokenize`?): run the same "
                         "command again, it resumes where it stopped")
    chunks = sorted(folder.glob("chunk-[0-9][0-9][0-9][0-9][0-9]"))
    expected = json.loads((folder / COMPLETE).read_text())["chunks"]
    if len(chunks) != expected:
        raise ValueError(f"{folder}: {len(chunks)} chunks, expected {expected}")
    if not chunks:  # a shard without rows
        return None
    return concatenate_datasets([load_from_disk(str(c)) for c in chunks])


def load_codes(out: str | Path, split: str):
    """The rows of `split`, shards concatenated in rank order (a datasets.Dataset)."""
    from datasets import concatenate_datasets

    folder = Path(out) / split
    shards = sorted(p for p in folder.glob("shard-*-of-*") if p.is_dir())
    if not shards:
        raise FileNotFoundError(f"no pre-tokenised shards in {folder}")
    worlds = {p.name.rsplit("-of-", 1)[1] for p in shards}
    if len(worlds) != 1 or len(shards) != int(worlds.pop()):
        raise ValueError(f"{folder}: incomplete or mixed shards {[p.name for p in shards]}")
    parts = [d for d in (_load_shard(p) for p in shards) if d is not None]
    if not parts:
        raise ValueError(f"{folder}: every shard is empty")
    return concatenate_datasets(parts)
