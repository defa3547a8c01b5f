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
        self.special_ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in SPECIALS.items()}

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def build(cls, text_tokenizer, audio_size: int, image_size: int) -> MultimodalVocab:
        """Extend `text_tokenizer` (a transformers tokenizer, or a path to one) with the
        specials it lacks, then `audio_size` unit tokens and `image_size` code tokens."""
        if isinstance(text_tokenizer, (str, Path)):
            from transformers import AutoTokenizer

            text_tokenizer = AutoTokenizer.from_pretrained(str(text_tokenizer))
        tok = text_tokenizer
        if min(audio_size, image_size) < 0:
            raise ValueError(f"sizes must be ≥ 0, got audio {audio_size}, image {image_size}")
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
        layout = json.loads((path / LAYOUT_FILE).read_text())
        vocab = cls(AutoTokenizer.from_pretrained(str(path)), layout)
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

    @staticmethod
    def _to_ids(values, offset: int, size: int, what: str) -> torch.Tensor:
        v = torch.as_tensor(values)
        if v.dtype.is_floating_point:
            raise ValueError(f"{what} must be integers, got {v.dtype}")
        bad = (v < 0) | (v >= size)
        if bad.any():
            raise ValueError(f"{what} {int(v[bad][0])} is out of range [0, {size})")
        return v.long() + offset

    def audio_ids(self, units) -> torch.Tensor:
        return self._to_ids(units, self.audio_offset, self.audio_size, "speech unit")

    def image_ids(self, codes) -> torch.Tensor:
        return self._to_ids(codes, self.image_offset, self.image_size, "image code")

    def units_from_ids(self, ids) -> torch.Tensor:
        return self._to_ids(torch.as_tensor(ids) - self.audio_offset, 0, self.audio_size,
                            "audio token id (minus offset)")

    def codes_from_ids(self, ids) -> torch.Tensor:
        return self._to_ids(torch.as_tensor(ids) - self.image_offset, 0, self.image_size,
                            "image token id (minus offset)")

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
