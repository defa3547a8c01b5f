"""JSON Lines, read the one way every reader here needs: blank lines skipped, and a line that
is not JSON an error naming the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def jsonl_rows(path: str | Path, text: str | None = None, what: str = "not JSON"
               ) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) of each non-blank line of `path` (or of `text`, named
    `path` in errors); a line that does not parse is a ValueError "PATH:LINE: WHAT (error)"."""
    if text is None:
        text = Path(path).read_text()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: {what} ({err})") from err
