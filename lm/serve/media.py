"""What the web demo sends and receives: uploads decoded with a message for the user (never a
stack trace), and results encoded for the page (PNG and WAV data URLs, spectrograms with the
hand-over marked, a unit strip coloured by code, a code grid)."""

from __future__ import annotations

import base64
import io

import numpy as np
import soundfile as sf
import torch

from speechtok.speech.io import prepare_waveform
from speechtok.speech.spectrogram import log_spectrogram


class InputError(ValueError):
    """Bad input from the page: its message is shown to the user as it is."""


def upload_file(data) -> io.IOBase:
    """An upload as a binary file positioned at its start: `bytes`, or the spooled temporary
    file the server streamed the body into (lm.serve.app); empty is an error."""
    f = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(0)
    return f if size else None


def decode_upload_audio(data, name: str, sample_rate: int, max_seconds: float
                        ) -> tuple[torch.Tensor, float, list[str]]:
    """Uploaded audio bytes → (mono `(samples,)` at `sample_rate`, the file's whole length in
    seconds, notes for the user on what was done to it).

    Only the first `max_seconds` are decoded (soundfile reads frames lazily), so a 1-hour
    upload costs what `max_seconds` of it costs; the caller says where it was cut."""
    source = upload_file(data)
    if source is None:
        raise InputError(f"{name}: the file is empty")
    notes = []
    try:
        with sf.SoundFile(source) as f:
            sr, total = f.samplerate, f.frames
            keep = min(total, int(max_seconds * sr))
            decoded = f.read(keep, dtype="float32", always_2d=True)  # (samples, channels)
    except Exception as err:  # soundfile raises several types for corrupt/unknown formats
        raise InputError(f"{name}: cannot decode this file as audio ({_first_line(err)}). "
                         "Upload WAV, FLAC, OGG or MP3.") from None
    if len(decoded) == 0:
        raise InputError(f"{name}: the file holds no audio samples")
    if decoded.shape[1] > 1:
        notes.append(f"{decoded.shape[1]} channels downmixed to mono")
    if sr != sample_rate:
        notes.append(f"resampled from {sr} Hz to {sample_rate} Hz")
    try:  # downmix, resample; NaN or infinite samples are an error
        wav = prepare_waveform(torch.from_numpy(np.ascontiguousarray(decoded.T))[None], sr,
                               sample_rate, warn=False)[0]
    except ValueError as err:
        raise InputError(f"{name}: {err}") from None
    return wav, total / sr, notes


def decode_upload_image(data, name: str):
    """Uploaded image bytes → a fully read PIL image, in any mode (`prepare_images` converts
    it: RGB, alpha over white); a corrupt file or a decompression bomb is an InputError."""
    from speechtok.image.io import open_pil

    source = upload_file(data)
    if source is None:
        raise InputError(f"{name}: the file is empty")
    try:
        return open_pil(source, name)
    except ValueError as err:
        raise InputError(str(err)) from None


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


# ---- results → the page ---------------------------------------------------------------------
def data_url(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def png_url(image) -> str:
    """A PIL image, a `(3, H, W)` float tensor in [0, 1] or an `(H, W, 3)` uint8 array."""
    from PIL import Image

    if torch.is_tensor(image):
        image = (image.detach().float().cpu().clamp(0, 1) * 255).round().byte()
        image = Image.fromarray(image.permute(1, 2, 0).numpy())
    elif isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return data_url(buf.getvalue(), "image/png")


def wav_url(wav: torch.Tensor, sample_rate: int) -> str:
    """16-bit PCM WAV of a mono waveform, clipped to [-1, 1]."""
    buf = io.BytesIO()
    sf.write(buf, wav.detach().float().cpu().clamp(-1, 1).numpy(), sample_rate, format="WAV",
             subtype="PCM_16")
    return data_url(buf.getvalue(), "audio/wav")


def _colormap(values: np.ndarray, name: str = "magma") -> np.ndarray:
    """Values in [0, 1] → uint8 RGB through a matplotlib colormap (no figure is made)."""
    from matplotlib import colormaps

    return (colormaps[name](np.clip(values, 0, 1))[..., :3] * 255).astype(np.uint8)


def spectrogram(wav: torch.Tensor, sample_rate: int, marks_s: tuple[float, ...] = (),
                height: int = 160, max_width: int = 900) -> np.ndarray:
    """Log-magnitude STFT of `wav` as an RGB image (low frequencies at the bottom), with a
    white vertical line at each time in `marks_s` (the hand-over from prompt to
    continuation). 25 ms windows, 10 ms hop."""
    from PIL import Image

    db = log_spectrogram(wav, sample_rate)
    db = ((db - (db.max() - 80)) / 80).clamp(0, 1).flip(0).numpy()  # an 80 dB range
    rgb = _colormap(db)
    width = min(max_width, max(3 * rgb.shape[1], 300))  # 3 pixels a 10 ms frame
    img = np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR)).copy()
    seconds = max(len(wav), int(0.025 * sample_rate)) / sample_rate
    for t in marks_s:
        x = min(width - 1, max(0, int(round(t / seconds * width))))
        img[:, max(0, x - 1): x + 2] = 255
    return img


def code_colour(codes: np.ndarray) -> np.ndarray:
    """A distinct, stable colour for each code id: hues spaced by the golden angle, so that
    neighbouring ids differ clearly and the same id is the same colour in every picture."""
    codes = np.asarray(codes, dtype=np.int64)
    hue = (codes * 0.618033988749895) % 1.0
    light = 0.45 + 0.2 * ((codes // 7) % 2)
    from matplotlib.colors import hsv_to_rgb

    hsv = np.stack([hue, np.full_like(hue, 0.65), np.full_like(hue, light) + 0.25], -1)
    return (hsv_to_rgb(np.clip(hsv, 0, 1)) * 255).astype(np.uint8)


def unit_strip(units: np.ndarray, height: int = 28, max_width: int = 900) -> np.ndarray:
    """One column per frame, coloured by its unit: runs of the same unit show as bands."""
    units = np.asarray(units).reshape(-1)
    scale = max(1, min(8, max_width // max(1, len(units))))
    row = np.repeat(code_colour(units), scale, axis=0)  # (frames·scale, 3)
    return np.repeat(row[None], height, axis=0)


def code_grid_image(grid: np.ndarray, size: int = 384) -> np.ndarray:
    """An (h, w) code grid as coloured cells, about `size` pixels a side, each cell with its
    code id written in it when the cells are large enough to read."""
    from PIL import Image, ImageDraw, ImageFont

    grid = np.asarray(grid)
    cell = max(1, size // max(grid.shape))
    img = Image.fromarray(np.repeat(np.repeat(code_colour(grid), cell, 0), cell, 1))
    if cell >= 16:
        draw, font = ImageDraw.Draw(img), ImageFont.load_default()
        colours = code_colour(grid)
        for (i, j), code in np.ndenumerate(grid):
            dark = colours[i, j] @ np.array([0.299, 0.587, 0.114]) > 140
            draw.text(((j + 0.5) * cell, (i + 0.5) * cell), str(code), anchor="mm", font=font,
                      fill=(0, 0, 0) if dark else (255, 255, 255))
    return np.asarray(img)
