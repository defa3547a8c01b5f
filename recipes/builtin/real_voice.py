"""The recorded prompts of a real voice in the built-in speech corpus (make_speech_corpus.py):
which recordings go to train, valid and test_real, as that corpus's metadata rows.

The prompts ship in data/real_speech_en_female (their README gives the licence); any folder of
recordings with a metadata.jsonl of file_name, text and duration works the same.
"""

from __future__ import annotations

import json
from pathlib import Path

REAL_VOICE_NAME = "allison"
# Shares of the real voice's sentences held out for valid and test_real (by utterances).
REAL_HELDOUT = {"valid": 0.08, "test_real": 0.17}


def split_real_voice(folder: Path, seed: int) -> dict[str, list[dict]]:
    """The recordings of `folder` (audio files + metadata.jsonl with file_name and text) split
    by sentence (speechtok.splits.split_by_sentence): about REAL_HELDOUT of the utterances go
    to valid and test_real, the rest to train. Records are this corpus's metadata rows (no
    phones)."""
    from speechtok.splits import split_by_sentence

    meta = folder / "metadata.jsonl"
    if not meta.is_file():
        raise SystemExit(f"--real-voice {folder}: no metadata.jsonl with file_name and text")
    rows = [json.loads(line) for line in meta.read_text().splitlines() if line.strip()]
    for row in rows:
        if not (folder / row["file_name"]).is_file():
            raise SystemExit(f"--real-voice: {folder / row['file_name']} is listed in "
                             f"{meta} but missing")
    # valid and test_real swapped in the shares' order: test_real is filled first
    parts = split_by_sentence(rows, {"test_real": REAL_HELDOUT["test_real"],
                                     "valid": REAL_HELDOUT["valid"]}, seed)
    return {split: [{"file": f"{REAL_VOICE_NAME}_{row['file_name']}",
                     "source": str(folder / row["file_name"]), "text": row["text"],
                     "voice": REAL_VOICE_NAME, "duration": row["duration"]} for row in split_rows]
            for split, split_rows in parts.items()}


def real_voice_records(folder: Path, seed: int, repeat: int = 1) -> dict[str, list[dict]]:
    """`split_real_voice`, with each training recording listed `repeat` times under distinct
    file names (a larger share of the real voice in the batches)."""
    real = split_real_voice(folder, seed)
    if repeat > 1:
        real["train"] = [{**r, "file": r["file"] if k == 0 else f"r{k}_{r['file']}"}
                         for k in range(repeat) for r in real["train"]]
    return real
