"""Training data read as a stream: a `datasets` IterableDataset, for corpora that are not on
this machine (`hub:NAME[:CONFIG]`, streamed from the Hugging Face Hub where it is reachable) or
that are read front to back (a saved dataset with `--streaming true`).

Each process reads its own part of the stream (`datasets.distributed.split_dataset_by_node`:
whole shards when they divide evenly among the processes, else every N-th row), shuffled with a
buffer (`shuffle_buffer` rows; a new order each epoch). The batch of step s is rows
[s·B, (s+1)·B) of that part, counted across epochs, so it is a function of the step alone:
every loader worker reads the same part, decodes only the rows of its own steps and skips the
rest undecoded (`Audio/Image(decode=False)`: skipping costs reading, not decoding). Batches are
therefore bit-identical with 0 or N workers, and a resumed run finds step s's rows by skipping
to them. The first `valid_rows` rows (before shuffling) are held out for evaluation and never
trained on.
"""

from __future__ import annotations

from pathlib import Path

from speechtok.splits import MediaItem, is_saved_dataset

HUB_PREFIX = "hub:"


def is_stream(data: str | Path, streaming: bool) -> bool:
    """Whether `data` is read as a stream: a `hub:` name always, a saved dataset when asked."""
    if str(data).startswith(HUB_PREFIX):
        return True
    if streaming and not is_saved_dataset(Path(data)):
        raise ValueError(f"{data}: --streaming reads a saved `datasets` folder or hub:NAME; a "
                         "folder of files is already read file by file (drop --streaming)")
    return streaming


def open_stream(data: str | Path, split: str = "train", shards: int = 64):
    """The `split` of `data` as a `datasets.IterableDataset` (see module docstring)."""
    name = str(data)
    if name.startswith(HUB_PREFIX):
        from datasets import load_dataset

        repo, _, config = name[len(HUB_PREFIX):].partition(":")
        return load_dataset(repo, config or None, split=split, streaming=True)
    from datasets import load_from_disk

    ds = load_from_disk(name)
    if hasattr(ds, "keys"):
        if split not in ds:
            raise ValueError(f"{data}: no split {split!r} (have {', '.join(ds.keys())})")
        ds = ds[split]
    return ds.to_iterable_dataset(num_shards=max(1, min(shards, len(ds))))


class MediaStream:
    """Rows of one process's part of a stream, by position (see module docstring)."""

    def __init__(self, data: str | Path, column: str, feature, seed: int, process_index: int,
                 num_processes: int, valid_rows: int, shuffle_buffer: int = 1000,
                 split: str = "train"):
        self.data, self.column, self.feature, self.split = str(data), column, feature, split
        self.seed, self.shuffle_buffer, self.valid_rows = seed, shuffle_buffer, valid_rows
        self.process_index, self.num_processes = process_index, num_processes
        self._rows, self._pos, self._epoch, self._stream = None, 0, 0, None

    def __getstate__(self):  # loader workers get a copy without the open iterator
        return {**self.__dict__, "_rows": None, "_pos": 0, "_epoch": 0, "_stream": None}

    def close(self) -> None:
        """Drop the open iterator (before loader workers are forked from this process)."""
        self._rows, self._pos, self._epoch, self._stream = None, 0, 0, None

    def _base(self):
        ds = open_stream(self.data, self.split)
        if self.column not in (ds.column_names or [self.column]):
            raise ValueError(f"{self.data}: no column {self.column!r} (columns: "
                             f"{', '.join(ds.column_names)})")
        return ds.cast_column(self.column, self.feature)

    def _iterate(self, ds):
        """Rows one by one, through `IterableDataset.iter` (its `__iter__` would split the
        shards among loader workers; here every worker reads the whole part)."""
        for batch in ds.iter(batch_size=64):
            keys = list(batch)
            for i in range(len(batch[keys[0]])):
                yield {k: batch[k][i] for k in keys}

    def head(self) -> list[MediaItem]:
        """The first `valid_rows` rows (unshuffled, not trained on)."""
        rows = self._iterate(self._base().take(self.valid_rows))
        return [self._item(row, f"row{i}") for i, row in enumerate(rows)]

    def _restart(self) -> None:
        from datasets.distributed import split_dataset_by_node

        ds = self._base().skip(self.valid_rows)
        ds = split_dataset_by_node(ds, self.process_index, self.num_processes)
        self._stream = ds.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer)
        self._pos, self._epoch = 0, 0
        self._stream.set_epoch(0)
        self._rows = self._iterate(self._stream)

    def _next(self) -> dict:
        try:
            return next(self._rows)
        except StopIteration:
            if self._pos == 0:
                raise ValueError(f"{self.data}: process {self.process_index} has no training "
                                 f"rows (after {self.valid_rows} held out)") from None
            self._epoch += 1
            self._stream.set_epoch(self._epoch)
            self._rows = self._iterate(self._stream)
            return next(self._rows)

    def rows(self, start: int, n: int) -> list[MediaItem]:
        """Rows `start` … `start + n - 1` of this process's part, counted across epochs."""
        if self._rows is None or start < self._pos:
            self._restart()
        while self._pos < start:  # other workers' steps, or a resume: skip undecoded
            self._next()
            self._pos += 1
        out = []
        for _ in range(n):
            out.append(self._item(self._next(), f"process{self.process_index}-row{self._pos}"))
            self._pos += 1
        return out

    def _item(self, row: dict, fallback: str) -> MediaItem:
        media = row[self.column]
        data = media.get("bytes") or None
        path = media.get("path")
        if data is None and not path:
            raise ValueError(f"{self.data}: row {fallback} has no {self.column} bytes or path")
        meta = {k: v for k, v in row.items() if k != self.column}
        return MediaItem(Path(path).name if path else fallback, None if data else Path(path),
                         data, meta)
