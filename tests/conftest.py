"""Shared fixtures: tiny random-initialised models and small synthetic audio made on the spot."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from speechtok import SpeechTokenizer, SpeechTokenizerConfig

TINY = dict(channels=16, latent_dim=8, codebook_size=16, codebook_dim=4, decoder_channels=16,
            dilations=(1, 3), griffin_lim_iters=4, dead_code_steps=2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_config(**overrides) -> SpeechTokenizerConfig:
    return SpeechTokenizerConfig(**{**TINY, **overrides})


@pytest.fixture
def tiny_tokenizer() -> SpeechTokenizer:
    tok = SpeechTokenizer(tiny_config())
    tok.train()
    tok(torch.randn(4, 16000) * 0.1)  # one training forward: k-means init of the codebook
    return tok.eval()


def speechlike(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A vowel-ish signal: a few harmonics with a wandering pitch, amplitude-modulated."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 + 40 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wav = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 5) * t) ** 2
    return (0.2 * wav * env + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture
def audio_folder(tmp_path):
    """Eight short files in mixed formats: 16 kHz mono wav, 44.1 kHz stereo wav, 8 kHz flac."""
    folder = tmp_path / "audio"
    folder.mkdir()
    for i in range(8):
        if i % 3 == 0:
            sf.write(folder / f"clip{i}.wav", speechlike(1.0, seed=i), 16000)
        elif i % 3 == 1:
            x = speechlike(1.2, 44100, seed=i)
            sf.write(folder / f"clip{i}.wav", np.stack([x, 0.5 * x], 1), 44100)
        else:
            sf.write(folder / f"clip{i}.flac", speechlike(0.8, 8000, seed=i), 8000)
    return folder


def write_captioned_images(root, splits: dict[str, int], size=(16, 16), green: int = 0,
                           caption: str = "picture") -> None:
    """An imagefolder with captions: root/<split>/<i>.png of distinct colours plus a
    metadata.jsonl of {"file_name", "text": f"{caption} {i}"}."""
    import json

    from PIL import Image

    for split, n in splits.items():
        (root / split).mkdir(parents=True)
        rows = []
        for i in range(n):
            Image.new("RGB", size, (40 * i, green, 255 - 40 * i)).save(root / split / f"{i}.png")
            rows.append({"file_name": f"{i}.png", "text": f"{caption} {i}"})
        (root / split / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def codes(tiny_tokenizer, audio_folder, tmp_path):
    """Speech and image codes of tiny random tokenizers, as `lm tokenize` writes them."""
    from helpers import tiny_image_tokenizer

    from lm.pretokenize import pretokenize

    tiny_tokenizer.save_pretrained(tmp_path / "speech_tok")
    pretokenize("speech", audio_folder, tmp_path / "speech_tok", tmp_path / "speech_codes")
    img_tok = tiny_image_tokenizer()
    img_tok.save_pretrained(tmp_path / "img_tok")
    write_captioned_images(tmp_path / "imgs", {"train": 6, "valid": 2}, green=90,
                           caption="colour number")
    pretokenize("image", tmp_path / "imgs", tmp_path / "img_tok", tmp_path / "image_codes")
    return tmp_path


@pytest.fixture
def bundle(tmp_path, tiny_tokenizer):
    """A random LM bundle with tiny speech and image tokenizers (no training)."""
    from helpers import make_bundle, tiny_image_tokenizer

    return make_bundle(tmp_path / "bundle", tiny_tokenizer, tiny_image_tokenizer())


@pytest.fixture
def lm(bundle):
    """The bundle's LM (eval mode) and its multimodal vocabulary."""
    from transformers import AutoModelForCausalLM

    from lm.vocab import MultimodalVocab

    return AutoModelForCausalLM.from_pretrained(str(bundle)).eval(), \
        MultimodalVocab.from_pretrained(bundle)
