"""Where training audio comes from: a folder of files, or a `datasets` dataset on disk.

Both become an `AudioSource`: a list of items, each loadable as a mono waveform at the model's
rate, with optional metadata (text, phone alignments) when the folder has a `metadata.jsonl`
(the layout the built-in corpus writes). Decoded clips are kept in a cache bounded in MB, so
memory stays bounded whatever the corpus size. Batches are drawn by step number from a seeded
generator, so a resumed run sees exactly the batches the killed run would have seen.
"""

from __future__ import annotations

from pathlib import Path

import torch

from speechtok.jsonl import jsonl_rows
from speechtok.memory_cache import BoundedCache
from speechtok.speech.content import ContentLabels
from speechtok.speech.io import decode_audio, list_audio_files, load_audio
from speechtok.splits import MediaItem, encoded_rows, hold_out, is_saved_dataset


class AudioItem(MediaItem):
    """An audio file or a dataset row's encoded audio."""


class AudioSource:
    """A list of audio items that loads waveforms on demand, keeping up to `cache_mb` MB of
    the most recently used ones decoded."""

    def __init__(self, items: list[AudioItem], sample_rate: int, cache_mb: float = 0.0):
        if not items:
            raise ValueError("no audio files found")
        self.items = items
        self.sample_rate = sample_rate
        self.cache = BoundedCache(cache_mb)

    def __len__(self) -> int:
        return len(self.items)

    def describe(self) -> str:
        return f"{len(self)} clips"

    def load(self, index: int) -> torch.Tensor:
        """Waveform `(samples,)` of item `index` at the source's sample rate."""
        return self.cache.get(index, lambda: self._decode(index))

    def _decode(self, index: int) -> torch.Tensor:
        item = self.items[index]
        if item.path is not None:
            return load_audio(item.path, self.sample_rate)
        return decode_audio(item.data, self.sample_rate, f"dataset row {item.name}")

    def batch(self, step: int, batch_size: int, segment: int, seed: int,
              process_index: int = 0) -> torch.Tensor:
        """Random crops `(batch_size, segment)` for training step `step` (deterministic).

        Clips shorter than `segment` are zero-padded at a random offset.
        """
        return self.labelled_batch(step, batch_size, segment, seed, process_index)["wav"]

    def labelled_batch(self, step: int, batch_size: int, segment: int, seed: int,
                       process_index: int = 0, labels: ContentLabels | None = None) -> dict:
        """`batch`'s crops as {"wav"}, plus {"phones": (batch_size, frames)} frame phone ids
        of each crop when `labels` is given (speechtok.speech.content)."""
        g = torch.Generator().manual_seed(hash((seed, step, process_index)) % (2**63))
        idx = torch.randint(len(self), (batch_size,), generator=g).tolist()
        crops = [random_crop_shift(self.load(i), segment, g) for i in idx]
        out = {"wav": torch.stack([c for c, _ in crops])}
        if labels is not None:
            out["phones"] = torch.stack([labels.phones(self.items[i].meta, shift, segment)
                                         for i, (_, shift) in zip(idx, crops, strict=True)])
        return out

    def utterance_batch(self, step: int, batch_size: int, max_samples: int, seed: int,
                        process_index: int, labels: ContentLabels) -> dict:
        """Whole utterances with text for a CTC step: {"wav" (B, T) zero-padded to the
        longest (a multiple of the unit stride), "phones" (B, frames), "frames" (B,) frames
        holding speech, "targets" (B, L) padded character ids, "target_lengths" (B,)}. An
        utterance longer than `max_samples` is cropped and gets no CTC target (length 0)."""
        texted = self._texted()
        if not texted:
            raise ValueError("the CTC objective needs items with a 'text' in metadata.jsonl (or "
                             "a 'text' column); none has one")
        g = torch.Generator().manual_seed(hash((seed, step, process_index, "utt")) % (2**63))
        idx = [texted[int(j)] for j in torch.randint(len(texted), (batch_size,), generator=g)]
        clips, shifts, targets = [], [], []
        for i in idx:
            wav = self.load(i)
            whole = len(wav) <= max_samples
            if not whole:
                wav, shift = random_crop_shift(wav, max_samples, g)
            clips.append(wav)
            shifts.append(0 if whole else shift)
            targets.append(labels.characters(self.items[i].meta) if whole else [])
        stride = labels.stride
        length = -(-max(len(w) for w in clips) // stride) * stride
        wav = torch.zeros(len(clips), length)
        for row, clip in enumerate(clips):
            wav[row, :len(clip)] = clip
        padded = torch.zeros(len(targets), max(1, max(map(len, targets))), dtype=torch.long)
        for row, t in enumerate(targets):
            padded[row, :len(t)] = torch.tensor(t, dtype=torch.long)
        return {"wav": wav,
                "phones": torch.stack([labels.phones(self.items[i].meta, shift, length)
                                       for i, shift in zip(idx, shifts, strict=True)]),
                "frames": torch.tensor([-(-len(c) // stride) for c in clips]),
                "targets": padded, "target_lengths": torch.tensor([len(t) for t in targets])}

    def _texted(self) -> list[int]:
        if not hasattr(self, "_texted_items"):
            self._texted_items = [i for i, item in enumerate(self.items)
                                  if isinstance(item.meta.get("text"), str)
                                  and item.meta["text"].strip()]
        return self._texted_items


def random_crop_shift(wav: torch.Tensor, segment: int, g: torch.Generator
                      ) -> tuple[torch.Tensor, int]:
    """A random `segment`-sample crop of `wav` and where it starts in `wav`, in samples; a
    shorter clip is zero-padded at a random offset, and the shift is then minus that offset."""
    out = torch.zeros(segment)
    if len(wav) >= segment:
        start = int(torch.randint(len(wav) - segment + 1, (1,), generator=g))
        out[:] = wav[start:start + segment]
        return out, start
    start = int(torch.randint(segment - len(wav) + 1, (1,), generator=g))
    out[start:start + len(wav)] = wav
    return out, -start


def random_crop(wav: torch.Tensor, segment: int, g: torch.Generator) -> torch.Tensor:
    """A random `segment`-sample crop of `wav`; a shorter clip is zero-padded at a random
    offset."""
    return random_crop_shift(wav, segment, g)[0]


class StreamingAudioSource:
    """Training clips from a stream (speechtok.streaming): step s's batch is the stream's rows
    [s·B, (s+1)·B) of this process, each randomly cropped."""

    def __init__(self, stream, sample_rate: int):
        self.stream, self.sample_rate = stream, sample_rate

    def describe(self) -> str:
        return f"streamed from {self.stream.data}"

    def batch(self, step: int, batch_size: int, segment: int, seed: int,
              process_index: int = 0) -> torch.Tensor:
        items = self.stream.rows(step * batch_size, batch_size)
        clips = AudioSource(items, self.sample_rate)
        g = torch.Generator().manual_seed(hash((seed, step, process_index)) % (2**63))
        return torch.stack([random_crop(clips.load(i), segment, g) for i in range(len(items))])


def open_stream_splits(data: str | Path, sample_rate: int, seed: int, process_index: int,
                       num_processes: int, valid_rows: int, shuffle_buffer: int,
                       audio_column: str = "audio") -> tuple[StreamingAudioSource, AudioSource]:
    """(train stream, held-out clips): the first `valid_rows` rows are the held-out ones."""
    from datasets import Audio

    from speechtok.streaming import MediaStream

    stream = MediaStream(data, audio_column, Audio(decode=False), seed, process_index,
                         num_processes, valid_rows, shuffle_buffer)
    return StreamingAudioSource(stream, sample_rate), AudioSource(stream.head(), sample_rate)


def _folder_items(folder: Path) -> list[AudioItem]:
    meta_file = folder / "metadata.jsonl"
    if meta_file.exists():
        items = []
        for line_no, meta in jsonl_rows(meta_file, what="bad metadata line"):
            # `file_name` is the datasets audiofolder convention; `file` is what older
            # versions of the built-in corpus wrote
            name = meta.get("file_name", meta.get("file")) if isinstance(meta, dict) else None
            if not isinstance(name, str):
                raise ValueError(f"{meta_file}:{line_no}: a metadata line needs the audio file "
                                 "under 'file_name' (or 'file')")
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{meta_file}:{line_no}: {folder / name} does not exist")
            items.append(AudioItem(name, folder / name, meta=meta))
        return items
    return [AudioItem(str(p.relative_to(folder)), p) for p in list_audio_files(folder)]


def _dataset_items(dataset, audio_column: str) -> list[AudioItem]:
    from datasets import Audio

    if audio_column not in dataset.column_names:
        raise ValueError(f"dataset has no column {audio_column!r} (columns: "
                         f"{', '.join(dataset.column_names)})")
    return [AudioItem(name, path, data, meta)
            for name, data, path, meta in encoded_rows(dataset, audio_column, Audio(decode=False))]


def open_splits(path: str | Path, sample_rate: int, valid_fraction: float = 0.05,
                audio_column: str = "audio", seed: int = 0, cache_mb: float = 0.0
                ) -> tuple[AudioSource, AudioSource]:
    """(train, valid) sources from a folder or a saved `datasets` dataset, each caching up to
    `cache_mb` MB of decoded clips.

    A folder with `train/` and `valid/` subfolders (or a DatasetDict with those splits) is used
    as split; otherwise a deterministic `valid_fraction` of the items is held out.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data not found: {path}")
    if is_saved_dataset(path):
        from datasets import load_from_disk

        ds = load_from_disk(str(path))
        if hasattr(ds, "keys"):  # DatasetDict
            if "train" not in ds:
                raise ValueError(f"{path}: dataset has no 'train' split ({list(ds.keys())})")
            train = _dataset_items(ds["train"], audio_column)
            valid_name = next((k for k in ("valid", "validation", "test") if k in ds), None)
            valid = _dataset_items(ds[valid_name], audio_column) if valid_name else None
        else:
            train, valid = _dataset_items(ds, audio_column), None
    elif (path / "train").is_dir():
        train = _folder_items(path / "train")
        valid = _folder_items(path / "valid") if (path / "valid").is_dir() else None
    else:
        train, valid = _folder_items(path), None
    if valid is None:
        train, valid = hold_out(train, valid_fraction, seed, f"{path} (audio files)")
    return AudioSource(train, sample_rate, cache_mb), AudioSource(valid, sample_rate, cache_mb)


def open_eval_source(path: str | Path, sample_rate: int, split: str | None = None
                     ) -> AudioSource:
    """The items to evaluate: folder `path/split` (default: test/, else valid/, else the whole
    folder), or that split of a saved DatasetDict (a plain saved Dataset is used whole)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data not found: {path}")
    if is_saved_dataset(path):
        from datasets import load_from_disk

        ds = load_from_disk(str(path))
        if hasattr(ds, "keys"):
            name = split or next((k for k in ("test", "valid", "validation") if k in ds), None)
            if name not in ds:
                raise ValueError(f"{path}: no split {name!r} (have {', '.join(ds.keys())})")
            ds = ds[name]
        return AudioSource(_dataset_items(ds, "audio"), sample_rate)
    if split is None:
        split = next((s for s in ("test", "valid") if (path / s).is_dir()), None)
    folder = path / split if split else path
    if not folder.is_dir():
        raise FileNotFoundError(f"{path} has no split folder {split!r}")
    return AudioSource(_folder_items(folder), sample_rate)
