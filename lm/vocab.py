"""MultimodalVocab: one id space for text, speech units and image codes.

    [ text tokens (incl. specials) | <a_0> ... <a_{K_audio-1}> | <i_0> ... <i_{K_image-1}> ]

Each modality owns one contiguous range, so unit → id is `audio_offset + unit` and image code →
id is `image_offset + code` (arithmetic, never a string lookup), and the modality of an id is
two comparisons. The specials <pad> <bos> <eos> <boa> <eoa> <boi> <eoi> are text-range tokens,
and <mask> is the sentinel of CM3's causal-masked samples. Units and codes are ordinary added
tokens named `<a_N>` / `<i_N>`, so the saved folder is a standard Hugging Face tokenizer:
`AutoTokenizer.from_pretrained(dir)` loads it with no project code, and `decode` shows units
and codes readably. `multimodal_vocab.json` beside it records the ranges. (A literal "<a_12>"
typed in a caption would encode as that unit token.)

Several codes per position (residual quantizers: RQ-VAE, SoundStream; `code_depth` D > 1) are
flattened depth-first: position p's codes c_0 … c_{D-1} follow each other, and level d has its
own K tokens, so a modality's range holds D·K tokens and code c at level d is token
`offset + d·K + c`. The LM stays a plain causal LM (no depth head, no delay pattern: MusicGen's
"flattening", its most faithful and slowest pattern), a position costs D tokens, and the
generation mask restricts each token to its level's K ids. Codes are passed as flat sequences
in that order (`speechtok.tokenizer.interleave` turns a (D, N) array into one).

A two-level hierarchy (VQ-VAE-2 / HQ-VAE: a coarse grid, then a fine one; `image_segments` =
tokens of each grid) is laid out coarse grid first, then the fine grid, each level with its own
K ids: the level of a token depends on its index in the image (`image_levels_at`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch

SPECIALS = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>", "boa": "<boa>", "eoa": "<eoa>",
            "boi": "<boi>", "eoi": "<eoi>", "mask": "<mask>"}  # <mask>: CM3's sentinel
# Modality ids of tokens, used by the loss and the generation masks.
TEXT, AUDIO, IMAGE = 0, 1, 2
MODALITY_NAMES = {TEXT: "text", AUDIO: "audio", IMAGE: "image"}
LAYOUT_FILE = "multimodal_vocab.json"


def train_bpe(texts: Iterable[str], vocab_size: int = 1000, min_frequency: int = 2):
    """A byte-level BPE (GPT-2 style, so any text encodes) trained on `texts`, with the
    specials first (ids 0-7); returned as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency,
        special_tokens=list(SPECIALS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                   eos_token="<eos>")


class MultimodalVocab:
    """A text tokenizer extended with speech-unit and image-code tokens (module docstring)."""

    def __init__(self, tokenizer, layout: dict):
        self.tokenizer = tokenizer
        self.layout = layout
        self.audio_offset, self.audio_size = layout["audio"]
        self.image_offset, self.image_size = layout["image"]
        # codes per position (older layouts have none: 1); *_size is the whole range, D·K
        self.audio_depth = int(layout.get("audio_depth", 1))
        self.image_depth = int(layout.get("image_depth", 1))
        # speech runs collapse to one unit (GSLM); acoustic codes keep every frame
        self.audio_dedup = bool(layout.get("audio_dedup", self.audio_depth == 1))
        # a hierarchy of grids (tokens of each, coarse first), or None
        self.image_segments = layout.get("image_segments")
        # levels of ids in the image range: depth-first codes, or the grids of a hierarchy
        self.image_levels = len(self.image_segments) if self.image_segments else self.image_depth
        self.special_ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in SPECIALS.items()}

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def build(cls, text_tokenizer, audio_size: int, image_size: int, audio_depth: int = 1,
              image_depth: int = 1, image_segments: list[int] | None = None,
              audio_dedup: bool | None = None) -> MultimodalVocab:
        """Extend `text_tokenizer` (a transformers tokenizer, or a path to one) with the
        specials it lacks, then `audio_size` unit tokens per level of `audio_depth` and
        `image_size` code tokens per level of `image_depth`, or per grid of a hierarchy whose
        grids hold `image_segments` codes each (module docstring). `audio_dedup`: whether
        speech runs collapse (default: with one code a frame)."""
        if image_segments is not None:
            image_segments = [int(n) for n in image_segments]
            if image_depth != 1 or len(image_segments) < 2 or min(image_segments) < 1:
                raise ValueError(f"a hierarchy needs ≥ 2 non-empty grids of one code a cell, "
                                 f"got segments {image_segments} at depth {image_depth}")
        if isinstance(text_tokenizer, (str, Path)):
            from transformers import AutoTokenizer

            text_tokenizer = AutoTokenizer.from_pretrained(str(text_tokenizer))
        tok = text_tokenizer
        if min(audio_size, image_size) < 0 or min(audio_depth, image_depth) < 1:
            raise ValueError(f"sizes must be ≥ 0 and depths ≥ 1, got audio {audio_size} × "
                             f"{audio_depth}, image {image_size} × {image_depth}")
        audio_size = audio_size * audio_depth
        image_size = image_size * (len(image_segments) if image_segments else image_depth)
        vocab = tok.get_vocab()
        missing = [s for s in SPECIALS.values() if s not in vocab]
        if missing:
            extra = {"additional_special_tokens": [s for s in missing if s not in
                                                   ("<pad>", "<bos>", "<eos>")]}
            for key in ("pad", "bos", "eos"):
                if SPECIALS[key] in missing:
                    extra[f"{key}_token"] = SPECIALS[key]
            tok.add_special_tokens(extra)
        if tok.pad_token is None:
            tok.pad_token = SPECIALS["pad"]
        audio_offset = len(tok)
        tok.add_tokens([f"<a_{i}>" for i in range(audio_size)])
        image_offset = len(tok)
        tok.add_tokens([f"<i_{i}>" for i in range(image_size)])
        layout = {"text_size": audio_offset, "audio": [audio_offset, audio_size],
                  "image": [image_offset, image_size], "size": len(tok)}
        if audio_depth > 1 or image_depth > 1:
            layout.update(audio_depth=audio_depth, image_depth=image_depth)
        if image_segments:
            layout["image_segments"] = image_segments
        if audio_dedup is not None and audio_dedup != (audio_depth == 1):
            layout["audio_dedup"] = bool(audio_dedup)
        vocab = cls(tok, layout)
        vocab._check_ranges()
        return vocab

    def _check_ranges(self) -> None:
        for name, offset, size in (("a", self.audio_offset, self.audio_size),
                                   ("i", self.image_offset, self.image_size)):
            for k in {0, size - 1} if size else ():
                got = self.tokenizer.convert_tokens_to_ids(f"<{name}_{k}>")
                if got != offset + k:
                    raise ValueError(f"token <{name}_{k}> has id {got}, expected {offset + k}: "
                                     "the base tokenizer already defines such tokens")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> MultimodalVocab:
        from transformers import AutoTokenizer

        path = Path(path)
        if not (path / LAYOUT_FILE).exists():
            raise FileNotFoundError(f"{path} has no {LAYOUT_FILE}: not a multimodal vocab")
        from .loading import check_tokenizer_files, read_json

        layout = read_json(path / LAYOUT_FILE)
        check_tokenizer_files(path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: cannot load its text tokenizer "
                             f"({str(err).strip().splitlines()[0] if str(err).strip() else err!r})"
                             ) from None
        try:
            vocab = cls(tokenizer, layout)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path / LAYOUT_FILE}: not a multimodal layout ({err!r})") from None
        vocab._check_ranges()
        return vocab

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(path))
        (path / LAYOUT_FILE).write_text(json.dumps(self.layout, indent=1))

    # ---- ids ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.layout["size"]

    def __getattr__(self, name: str) -> int:
        # vocab.boa_id, vocab.pad_id, ... for the specials
        if name.endswith("_id") and name[:-3] in SPECIALS:
            return self.__dict__["special_ids"][name[:-3]]
        raise AttributeError(name)

    def image_levels_at(self, index: torch.Tensor) -> torch.Tensor:
        """The level (0 … image_levels - 1) of the token at each `index` of an image's flat
        codes: index mod depth, or which grid of the hierarchy the index falls in."""
        if self.image_segments:
            bounds = torch.tensor(self.image_segments, device=index.device).cumsum(0)[:-1]
            return torch.bucketize(index, bounds, right=True)
        return index % self.image_depth

    def _check_whole(self, n: int, levels: int, segments, what: str) -> None:
        if segments and n != sum(segments):
            raise ValueError(f"{n} {what}s are not one image of the hierarchy's "
                             f"{' + '.join(map(str, segments))} codes")
        if not segments and n % levels:
            raise ValueError(f"{n} {what}s do not fill whole positions of {levels} codes")

    def _to_ids(self, values, offset: int, size: int, what: str, levels: int = 1,
                segments=None) -> torch.Tensor:
        """Flat codes (depth-first, or grid after grid) → ids: offset + level·K + code."""
        v = torch.as_tensor(values)
        if v.dtype.is_floating_point:
            raise ValueError(f"{what} must be integers, got {v.dtype}")
        k = size // levels
        bad = (v < 0) | (v >= k)
        if bad.any():
            raise ValueError(f"{what} {int(v[bad][0])} is out of range [0, {k})")
        if levels == 1:
            return v.long() + offset
        v = v.flatten()
        self._check_whole(len(v), levels, segments, what)
        index = torch.arange(len(v))
        level = self.image_levels_at(index) if segments else index % levels
        return v.long() + offset + level * k

    def _from_ids(self, ids, offset: int, size: int, what: str, levels: int = 1,
                  segments=None) -> torch.Tensor:
        """Ids → flat codes; with several levels each id must lie in its level's range."""
        raw = torch.as_tensor(ids).long() - offset
        bad = (raw < 0) | (raw >= size)
        if bad.any():
            raise ValueError(f"{what} {int(raw[bad][0]) + offset} is not in the range "
                             f"[{offset}, {offset + size})")
        if levels == 1:
            return raw
        k = size // levels
        raw = raw.flatten()
        index = torch.arange(len(raw))
        level = self.image_levels_at(index) if segments else index % levels
        wrong = raw // k != level
        if wrong.any():
            i = int(wrong.nonzero()[0])
            raise ValueError(f"{what} {int(raw[i]) + offset} at position {i} is a level-"
                             f"{int(raw[i]) // k} code where level {int(level[i])} belongs")
        return raw - level * k

    def audio_ids(self, units) -> torch.Tensor:
        """Speech units (flat; depth-first for several codes a frame) → token ids."""
        return self._to_ids(units, self.audio_offset, self.audio_size, "speech unit",
                            self.audio_depth)

    def image_ids(self, codes) -> torch.Tensor:
        """Image codes (flat, raster order; depth-first for several codes a cell; grid after
        grid for a hierarchy) → ids."""
        return self._to_ids(codes, self.image_offset, self.image_size, "image code",
                            self.image_levels, self.image_segments)

    def units_from_ids(self, ids) -> torch.Tensor:
        return self._from_ids(ids, self.audio_offset, self.audio_size, "audio token id",
                              self.audio_depth)

    def codes_from_ids(self, ids) -> torch.Tensor:
        return self._from_ids(ids, self.image_offset, self.image_size, "image token id",
                              self.image_levels, self.image_segments)

    def modality(self, ids) -> torch.Tensor:
        """TEXT / AUDIO / IMAGE of each id (specials count as text)."""
        ids = torch.as_tensor(ids)
        out = torch.full_like(ids, TEXT)
        out[(ids >= self.audio_offset) & (ids < self.audio_offset + self.audio_size)] = AUDIO
        out[(ids >= self.image_offset) & (ids < self.image_offset + self.image_size)] = IMAGE
        return out

    def encode_text(self, text: str) -> list[int]:
        """Text ids without specials."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(torch.as_tensor(ids).tolist())
