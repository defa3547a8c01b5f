"""The one interface every tokenizer the LM can use implements: our speech VQ-VAE and image
VQGAN, a k-means over a self-supervised model's layer (GSLM's speech2unit), and the pretrained
codecs and image VQs of transformers (speechtok.tokenizer.hf).

    tok.modality         "speech" or "image" (how media are read: speechtok.tokenizer.media)
    tok.layout           CodeLayout: codebook size, depth, frame rate or grid
    tok.encode(media)    speech (batch, samples) at layout.sample_rate → (batch, [depth,] frames)
                         images (batch, 3, H, W) in [0, 1] → (batch, [depth,] h, w)
    tok.decode(codes)    the inverse; speech also takes run lengths of deduplicated units
                         (`durations`) and, where the tokenizer has one, a speaker vector;
                         `tok.decodes` is False where there is no decoder
                         (a hierarchy of grids encodes to flat `(batch, coarse + fine)`)
    tok.save_pretrained(folder)    a folder `load_tokenizer` reads back

`layout.flatten` / `layout.unflatten` turn one item's codes into the LM's flat order and back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from .layout import CodeLayout


def silence_padding(wav: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Zero each row of a batch of waveforms `(batch, samples)` past its own length: rows of
    run-length-expanded units are right-padded to the longest."""
    if lengths is None:
        return wav
    keep = torch.arange(wav.shape[-1], device=wav.device)[None] < lengths.to(wav.device)[:, None]
    return wav * keep


class MediaTokenizer(ABC):
    """Base of the tokenizers (an abstract mixin: ours are also `nn.Module`s with the Hub
    mixin); `layout`, `encode` and `decode` are what each implements."""

    modality: str = ""
    decodes: bool = True  # codes → media (transformers ships no decoder for Chameleon's VQ)

    @property
    @abstractmethod
    def layout(self) -> CodeLayout: ...

    @property
    def source(self) -> str | None:
        """Where the weights come from when not from the tokenizer's own folder (a Hub name
        or a local path), for model cards; None for a self-contained folder."""
        return None

    @abstractmethod
    def encode(self, media: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def decode(self, codes: torch.Tensor, *args, **kwargs) -> torch.Tensor: ...

    def check_codes(self, codes) -> torch.Tensor:
        """Integer codes in [0, codebook_size), else a ValueError naming the first bad id."""
        codes = torch.as_tensor(codes)
        if codes.dtype.is_floating_point:
            raise ValueError(f"codes must be integer ids, got dtype {codes.dtype}")
        if codes.numel() == 0:
            raise ValueError("no codes to decode")
        size = self.layout.codebook_size
        bad = (codes < 0) | (codes >= size)
        if bad.any():
            raise ValueError(f"{self.modality} code {int(codes[bad][0])} is out of range "
                             f"[0, {size})")
        return codes.long()
