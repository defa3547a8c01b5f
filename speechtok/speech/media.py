"""How the tokenizer interface reads, batches and writes speech (speechtok.tokenizer.media)."""

from __future__ import annotations

from pathlib import Path

import torch


class SpeechMedia:
    """Audio files ↔ mono waveforms `(samples,)` at the tokenizer's sample rate."""

    name = "speech"
    codes_key = "units"  # the column of pre-tokenised rows (lm.pretokenize)
    suffix = ".wav"
    # one utterance an encoder call: padding to a common length would change the codes of the
    # last frames (the encoder's receptive field would see the padding)
    batched = False

    def items(self, data: str | Path, split: str | None, layout) -> list:
        from .data import open_eval_source

        return open_eval_source(data, layout.sample_rate, split).items

    def read(self, path: str | Path, layout) -> torch.Tensor:
        from .io import load_audio

        return load_audio(path, layout.sample_rate)

    def read_bytes(self, data: bytes, name: str, layout) -> torch.Tensor:
        from .io import decode_audio

        return decode_audio(data, layout.sample_rate, name)

    def encode(self, tokenizer, media: list[torch.Tensor]) -> list[torch.Tensor]:
        """The codes of each waveform, `(frames,)` or `(depth, frames)`, on the CPU."""
        return [tokenizer.encode(wav[None])[0].cpu() for wav in media]

    def evaluate(self, tokenizer, data: str | Path, split: str | None,
                 max_items: int | None) -> dict[str, float]:
        """`speechtok eval`'s figures: ours with its decoder's (speechtok.speech.evaluate),
        any other speech tokenizer through its units alone."""
        from .data import open_eval_source
        from .evaluate import evaluate_speech, evaluate_units
        from .modeling import SpeechTokenizer

        source = open_eval_source(data, tokenizer.layout.sample_rate, split)
        if isinstance(tokenizer, SpeechTokenizer):
            return evaluate_speech(tokenizer, source, max_items, progress=True)
        return evaluate_units(tokenizer, source, max_items, progress=True)

    def save(self, path: str | Path, media: torch.Tensor, layout) -> None:
        from .io import save_audio

        save_audio(path, media, layout.sample_rate)
