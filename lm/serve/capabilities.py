"""The four things the web demo does with a bundle, as plain functions of the request's values:
text → images, continue a speech prompt, speech → units → speech, image → codes → image.

Each returns a JSON-able dict for the page (images and audio as data URLs). Bad input raises
`InputError` with a message for the user; the app turns it into an error in the page.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch
import yaml

from speechtok.metrics.wer import recogniser_available

from ..pipelines import Bundle, SpeechContinuation, TextToImage
from .media import (
    InputError,
    code_grid_image,
    decode_upload_audio,
    decode_upload_image,
    png_url,
    spectrogram,
    unit_strip,
    wav_url,
)

MAX_IMAGES = 16  # per request: a grid of at most 4 × 4
MAX_CONTINUATION_S = 20.0


def _number(value, name: str, low: float, high: float, integer: bool = False):
    """A form value → a number in [low, high]; None and "" mean "the bundle's default"."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise InputError(f"{name} must be between {low:g} and {high:g}, got {value}")
    if integer:
        if number != int(number):
            raise InputError(f"{name} must be a whole number, got {value}")
        return int(number)
    return number


def trained_tasks(bundle_path: Path) -> dict[str, float]:
    """The task weights the bundle's LM was trained with (`train_config.yaml`), or {}."""
    path = Path(bundle_path) / "train_config.yaml"
    if not path.exists():
        return {}
    doc = yaml.safe_load(path.read_text()) or {}
    return dict((doc.get("LMTrainConfig") or {}).get("task_weights") or {})


class Capabilities:
    """A loaded bundle and what the page can do with it."""

    def __init__(self, bundle_path: str | Path, device: str | None = None,
                 max_upload_seconds: float = 60.0):
        self.bundle = Bundle(bundle_path, device)
        self.max_upload_seconds = float(max_upload_seconds)
        self.text_to_image_pipe = self.speech_pipe = None
        self.missing: dict[str, str] = {}
        try:
            self.text_to_image_pipe = TextToImage(self.bundle)
        except (FileNotFoundError, ValueError) as err:
            self.missing["image"] = str(err)
        try:
            self.speech_pipe = SpeechContinuation(self.bundle)
        except (FileNotFoundError, ValueError) as err:
            self.missing["speech"] = str(err)
        weights = trained_tasks(self.bundle.path)
        self.maskgit = self.text_to_image_pipe is not None and \
            weights.get("maskgit_image", 0) > 0
        self.recogniser = recogniser_available()

    # ---- what the page shows before any request ---------------------------------------------
    def info(self) -> dict:
        speech_tok = self.speech_pipe.speech_tokenizer if self.speech_pipe else None
        image_tok = self.text_to_image_pipe.image_tokenizer if self.text_to_image_pipe else None
        return {
            "bundle": self.bundle.path.name,
            "device": str(self.bundle.device),
            "image": image_tok is not None,
            "speech": speech_tok is not None,
            "missing": self.missing,
            "maskgit": self.maskgit,
            "recogniser": self.recogniser,
            "learned_vocoder": getattr(speech_tok, "vocoder", None) is not None,
            "resolution": image_tok.layout.resolution if image_tok else None,
            "defaults": self.bundle.defaults,
            "max_upload_seconds": self.max_upload_seconds,
            "max_images": MAX_IMAGES,
        }

    def _need(self, kind: str):
        pipe = {"image": self.text_to_image_pipe, "speech": self.speech_pipe}[kind]
        if pipe is None:
            raise InputError(f"this bundle cannot do that: {self.missing.get(kind, kind)}")
        return pipe

    # ---- 1. text → images -------------------------------------------------------------------
    def text_to_image(self, caption: str, num_images=4, guidance=None, temperature=None,
                      top_k=None, seed=0, decoding="causal", steps=8) -> dict:
        pipe = self._need("image")
        if caption is not None and not isinstance(caption, str):
            raise InputError(f"the caption must be text, got {type(caption).__name__}")
        caption = " ".join((caption or "").split())
        if not caption:
            raise InputError("Write a caption first: it is empty.")
        num = _number(num_images, "number of images", 1, MAX_IMAGES, integer=True) or 1
        if decoding not in ("causal", "maskgit"):
            raise InputError(f"decoding must be causal or maskgit, got {decoding!r}")
        if decoding == "maskgit" and not self.maskgit:
            raise InputError("this bundle's LM was not trained with the maskgit_image task: "
                             "use causal decoding")
        settings = dict(guidance_scale=_number(guidance, "guidance", 0, 20),
                        temperature=_number(temperature, "temperature", 0, 5),
                        top_k=_number(top_k, "top-k", 0, 100_000, integer=True),
                        seed=_number(seed, "seed", 0, 2**63 - 1, integer=True),
                        decoding=decoding,
                        steps=_number(steps, "MaskGIT steps", 1, 256, integer=True) or 8)
        start = time.perf_counter()
        try:
            out = pipe(caption, num_images=num, **settings)
        except ValueError as err:  # a caption the text tokenizer cannot spell, named
            raise InputError(str(err)) from None
        seconds = time.perf_counter() - start
        h, w = out.images.shape[-2:]
        return {"images": [png_url(img) for img in out.images], "width": int(w),
                "height": int(h), "seconds": round(seconds, 2), "caption": caption,
                "settings": {**out.settings, "seed": settings["seed"]}}

    # ---- 2. continue speech -----------------------------------------------------------------
    def continue_speech(self, data: bytes, name: str = "upload", prompt_seconds=3.0,
                        max_seconds=5.0, min_seconds=0.0, temperature=None, top_k=None,
                        seed=0) -> dict:
        pipe = self._need("speech")
        sr = pipe.speech_tokenizer.sample_rate
        prompt_s = _number(prompt_seconds, "prompt seconds", 0.1, self.max_upload_seconds) \
            or 3.0
        max_s = _number(max_seconds, "continuation seconds", 0.1, MAX_CONTINUATION_S) or 5.0
        min_s = _number(min_seconds, "minimum continuation seconds", 0, max_s) or 0.0
        wav, total_s, notes = decode_upload_audio(data, name, sr, prompt_s)
        if total_s > prompt_s:
            notes.insert(0, f"{name} is {total_s:,.1f} s long: its first {prompt_s:g} s are "
                         "the prompt")
        start = time.perf_counter()
        try:
            out = pipe(wav, sr, prompt_seconds=None, max_seconds=max_s, min_seconds=min_s,
                       temperature=_number(temperature, "temperature", 0, 5),
                       top_k=_number(top_k, "top-k", 0, 100_000, integer=True),
                       seed=_number(seed, "seed", 0, 2**63 - 1, integer=True))
        except ValueError as err:  # a prompt shorter than a frame, too long for the LM
            raise InputError(f"{name}: {err}") from None
        seconds = time.perf_counter() - start
        full = out.waveforms[0]
        layout = pipe.speech_tokenizer.layout
        continuation = round(int(out.durations[0].sum()) * sr / layout.frame_rate)
        handover = max(0, len(full) - continuation) / sr
        result = {
            "prompt_audio": wav_url(wav, sr),
            "output_audio": wav_url(full, sr) if len(full) else None,
            "spectrogram": png_url(spectrogram(full, sr, (handover,))) if len(full) else None,
            "prompt_spectrogram": png_url(spectrogram(wav, sr)),
            "handover_s": round(handover, 2),
            "prompt_s": round(len(wav) / sr, 2),
            "continuation_s": round(continuation / sr, 2),
            "units": len(out.units[0]),
            "seconds": round(seconds, 2),
            "settings": out.settings,
            "notes": notes + ([] if len(out.units[0]) else
                              ["the LM ended the utterance at once: no continuation (set a "
                               "minimum length, or cut the prompt before its end)"]),
        }
        if self.recogniser and len(full):
            heard = transcribe_waveforms([full, full[len(full) - continuation:]], sr)
            result["transcript"], result["continuation_transcript"] = heard
        return result

    # ---- 3. speech → units → speech ---------------------------------------------------------
    def speech_tokenizer(self, data: bytes, name: str = "upload") -> dict:
        tok = self._need("speech").speech_tokenizer
        layout = tok.layout
        sr = layout.sample_rate
        wav, total_s, notes = decode_upload_audio(data, name, sr, self.max_upload_seconds)
        if total_s > self.max_upload_seconds:
            notes.insert(0, f"{name} is {total_s:,.1f} s long: cut to its first "
                         f"{self.max_upload_seconds:g} s (the limit `lm serve "
                         "--max-upload-seconds` sets)")
        if len(wav) < sr / layout.frame_rate:
            raise InputError(f"{name}: {len(wav)} samples is shorter than one frame "
                             f"({1000 / layout.frame_rate:.0f} ms)")
        start = time.perf_counter()
        with torch.inference_mode():
            units = tok.encode(wav[None])[0].cpu()  # (frames,) or (depth, frames)
            decoded = resyntheses(tok, wav, units)
        if not decoded:
            notes.append("this tokenizer has no decoder yet (k-means units: train a unit "
                         "vocoder with `speechtok train vocoder --tokenizer`)")
        seconds = time.perf_counter() - start
        depth = layout.depth
        first = units if depth == 1 else units[0]
        frames = int(first.shape[-1])
        runs = int(len(torch.unique_consecutive(first)))
        duration = len(wav) / sr
        return {
            "input_audio": wav_url(wav, sr),
            "input_spectrogram": png_url(spectrogram(wav, sr)),
            "strip": png_url(unit_strip(first.numpy())),
            "units": first.tolist()[:2000],
            "frames": frames,
            "depth": depth,
            "codebook_size": layout.codebook_size,
            "frame_rate": round(layout.frame_rate, 2),
            "bitrate": round(layout.bitrate, 1),  # frames/s × log2 K × codes a frame
            "dedup_units_per_s": round(runs / duration, 1),
            "resynthesis": {k: {"audio": wav_url(v, sr),
                                "spectrogram": png_url(spectrogram(v, sr))}
                            for k, v in decoded.items()},
            "seconds": round(seconds, 2),
            "notes": notes,
        }

    # ---- 4. image → codes → image -----------------------------------------------------------
    def image_tokenizer(self, data: bytes, name: str = "upload") -> dict:
        from speechtok.image.io import prepare_images
        from speechtok.metrics.image import psnr

        tok = self._need("image").image_tokenizer
        layout = tok.layout
        img = decode_upload_image(data, name)
        notes = [] if img.size == (layout.resolution,) * 2 else [
            f"{img.size[0]}×{img.size[1]} → shorter side resized to {layout.resolution} "
            "and centre-cropped"]
        start = time.perf_counter()
        target = prepare_images([img], layout.resolution)  # (1, 3, R, R) in [0, 1]
        codes = tok.encode(target)
        recon = tok.decode(codes).cpu()
        seconds = time.perf_counter() - start
        grid = display_grid(codes[0].cpu(), layout.grid)
        tokens = int(codes[0].numel())
        return {
            "input": png_url(target[0]),
            "reconstruction": png_url(recon[0]),
            "grid": png_url(code_grid_image(grid.numpy())),
            "codes": grid.tolist(),
            "grid_size": list(grid.shape),
            "tokens": tokens,
            "bits": round(tokens * math.log2(layout.codebook_size), 1),
            "psnr": round(float(psnr(recon, target)[0]), 2),
            "resolution": layout.resolution,
            "seconds": round(seconds, 2),
            "notes": notes,
        }


def resyntheses(tok, wav: torch.Tensor, units: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each decoder's waveform of `units`: ours with Griffin-Lim and, when trained, the learned
    decoder, in the voice of `wav` when the tokenizer has a speaker encoder; a pretrained
    codec or a k-means tokenizer with its own decoder."""
    from speechtok.speech import SpeechTokenizer

    if not isinstance(tok, SpeechTokenizer):  # a codec, k-means units: their one decoder
        if getattr(tok, "vocoder", True) is None:  # k-means units with no vocoder yet
            return {}
        return {"decoder": tok.decode(units[None])[0].cpu()}
    speaker = tok.speaker_embedding(wav[None]) if tok.speaker_encoder is not None else None
    out = {"griffin_lim": tok.decode(units[None], None, speaker, vocoder="griffin_lim")[0]}
    if tok.vocoder is not None:
        out["learned"] = tok.decode(units[None], None, speaker, vocoder="learned")[0]
    return {k: v.cpu() for k, v in out.items()}


def display_grid(codes: torch.Tensor, side: int) -> torch.Tensor:
    """The (h, w) grid to show: the grid itself, the first level of residual codes
    (depth, h, w), or the fine grid of a two-grid hierarchy's flat codes."""
    if codes.dim() == 3:
        return codes[0]
    if codes.dim() == 1:
        return codes[-side * side:].reshape(side, side)
    return codes


def transcribe_waveforms(wavs: list[torch.Tensor], sample_rate: int) -> list[str]:
    """What pocketsphinx hears in each waveform."""
    from speechtok.metrics.wer import transcribe
    from speechtok.speech.io import save_audio

    with tempfile.TemporaryDirectory(prefix="lm_serve_asr_") as tmp:
        paths = []
        for i, wav in enumerate(wavs):
            paths.append(Path(tmp) / f"{i}.wav")
            save_audio(paths[-1], wav if len(wav) else torch.zeros(sample_rate // 10),
                       sample_rate)
        return transcribe(paths)

