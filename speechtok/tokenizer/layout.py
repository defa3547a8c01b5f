"""The shape of a tokenizer's codes, and the one place where codes become a flat sequence of
positions and back.

Speech codes are `(frames,)`, or `(depth, frames)` when a frame has several codebooks (a
residual quantizer, or a codec such as Mimi, EnCodec or DAC). Image codes are an `(h, w)` grid,
`(depth, h, w)` with several codes a cell, or a flat `(coarse + fine,)` sequence for a two-grid
hierarchy (VQ-VAE-2). The LM reads them flat: several codes of one position depth-first
(`interleave`, the "flattening" pattern of Copet et al. 2023, MusicGen §2.2), grids in raster
order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


def interleave(codes) -> torch.Tensor:
    """Codes (depth, n) → the flat depth-first sequence (n·depth,) the vocabulary takes;
    a 1-D sequence (one code per position) is returned as it is."""
    codes = torch.as_tensor(codes)
    return codes.T.flatten() if codes.dim() == 2 else codes.flatten()


def deinterleave(flat, depth: int) -> torch.Tensor:
    """The inverse of `interleave`: (n·depth,) → (depth, n), or (n,) when depth is 1."""
    flat = torch.as_tensor(flat).flatten()
    if depth == 1:
        return flat
    if len(flat) % depth:
        raise ValueError(f"{len(flat)} codes do not fill whole positions of {depth}")
    return flat.view(-1, depth).T


@dataclass(frozen=True)
class CodeLayout:
    """What a tokenizer's codes look like.

    `modality`: "speech" or "image". `codebook_size`: ids per code (every level the same
    size). `depth`: codes per position (frame or cell). Speech: `sample_rate` of the audio and
    `frame_rate` of the codes (frames a second). Images: `resolution` (square side in pixels),
    `grid` (codes per side), `segments` (codes of each grid of a hierarchy, coarse first)."""

    modality: str
    codebook_size: int
    depth: int = 1
    sample_rate: int | None = None
    frame_rate: float | None = None
    resolution: int | None = None
    grid: int | None = None
    segments: tuple[int, ...] | None = None
    deduplicate: bool | None = None  # None: speech of one code a frame (see `deduplicated`)

    def __post_init__(self):
        if self.codebook_size < 2 or self.depth < 1:
            raise ValueError(f"a code layout needs codebook_size ≥ 2 and depth ≥ 1, got "
                             f"{self.codebook_size} and {self.depth}")
        if self.modality == "speech" and not (self.sample_rate and self.frame_rate):
            raise ValueError("a speech code layout needs sample_rate and frame_rate")
        if self.modality == "image" and not (self.resolution and self.grid):
            raise ValueError("an image code layout needs resolution and grid")

    @property
    def deduplicated(self) -> bool:
        """Runs of one unit collapse to one (GSLM's pseudo-text units, Lakhotia et al. 2021);
        several codebooks a frame are acoustic codes and keep every frame (AudioLM), as do a
        codec's frames of one codebook (X-codec 2, as Llasa models them)."""
        if self.deduplicate is not None:
            return self.modality == "speech" and self.deduplicate
        return self.modality == "speech" and self.depth == 1

    @property
    def positions_per_item(self) -> int | None:
        """Code positions of one image (its grid, or both grids of a hierarchy)."""
        if self.grid is None:
            return None
        return sum(self.segments) if self.segments else self.grid ** 2

    @property
    def tokens_per_second(self) -> float | None:
        """LM tokens a second of speech (before deduplication)."""
        return None if self.frame_rate is None else self.frame_rate * self.depth

    @property
    def bitrate(self) -> float | None:
        """Bits a second of speech: frames/s × log2 K × codes a frame."""
        rate = self.tokens_per_second
        return None if rate is None else rate * math.log2(self.codebook_size)

    def flatten(self, codes) -> torch.Tensor:
        """One item's codes (the shapes in the module docstring) → the flat LM order."""
        codes = torch.as_tensor(codes)
        if self.modality == "image" and not self.segments:
            codes = codes.flatten(-2)  # (depth, h·w) or (h·w,)
        return interleave(codes)

    def unflatten(self, flat) -> torch.Tensor:
        """The inverse of `flatten`: the codes `decode` takes for one item."""
        codes = deinterleave(flat, self.depth)
        if self.modality == "image" and not self.segments:
            lead = () if self.depth == 1 else (self.depth,)
            codes = codes.reshape(*lead, self.grid, self.grid)
        return codes

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        if self.segments:
            out["segments"] = list(self.segments)
        return out
