"""Folders of many distinct audio and image files for the data benchmarks (made once, cached).

Speech-like clips (a harmonic tone with a moving pitch under a syllable-rate envelope, plus
noise) as 16 kHz FLAC, LibriSpeech's format; photo-sized smooth random images as JPEG. Only the
cost of reading, decoding and cropping them matters here, not what they sound or look like.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from tqdm.auto import tqdm


def audio_folder(path: Path, n: int, seconds=(1.0, 3.0), rate: int = 16000, seed: int = 0
                 ) -> Path:
    """`n` FLAC files with a metadata.jsonl (audiofolder layout); reused if already made."""
    path = Path(path)
    if (path / "metadata.jsonl").exists():
        return path
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in tqdm(range(n), desc=f"write {n} audio files", leave=False):
        length = int(rng.uniform(*seconds) * rate)
        t = np.arange(length) / rate
        f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        voice = sum(np.sin(k * phase) / k for k in range(1, 8))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 6) * t) ** 2
        wav = 0.2 * envelope * voice + 0.01 * rng.standard_normal(length)
        name = f"{i:06d}.flac"
        sf.write(path / name, wav.astype(np.float32), rate)
        rows.append({"file_name": name, "text": f"clip {i}"})
    (path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def image_folder(path: Path, n: int, size=(512, 384), seed: int = 0) -> Path:
    """`n` JPEG photos-sized images with a metadata.jsonl (imagefolder layout); reused."""
    path = Path(path)
    if (path / "metadata.jsonl").exists():
        return path
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in tqdm(range(n), desc=f"write {n} images", leave=False):
        small = rng.integers(0, 256, (size[1] // 32, size[0] // 32, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize(size, Image.BICUBIC)
        name = f"{i:06d}.jpg"
        img.save(path / name, quality=90)
        rows.append({"file_name": name, "text": f"picture {i}"})
    (path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
