"""Files that appear whole or not at all: a writer writes a temporary sibling, renamed over the
target only when it succeeded (`os.replace` is atomic on one filesystem), so a failed or
killed command never leaves a half-written output, nor destroys the file it would replace."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` with the same suffix (writers that pick the format by
    extension still do); renamed to `path` when the block ends without an error, removed
    otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs):
    """`open(path, mode)` through `atomic_path`."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
