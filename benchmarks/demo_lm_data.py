"""The demo LM's configs, vocabulary and task sources built from pre-tokenised codes: what the
LM benchmarks time the step on."""

from __future__ import annotations

from pathlib import Path

from lm.data import TaskSources
from lm.model import LMConfig
from lm.train import LMTrainConfig, build_vocab, load_split_codes
from speechtok.training.config import build_configs


def demo_lm_data(codes: Path, config: str | Path):
    """(model config, train config, vocabulary, task sources) of the LM config `config` over
    the codes in `codes`/speech and `codes`/image (the training split)."""
    model_cfg, cfg = build_configs([LMConfig, LMTrainConfig], config,
                                   {"speech_codes": str(codes / "speech"),
                                    "image_codes": str(codes / "image")})
    speech, smeta = load_split_codes(cfg.speech_codes, "train")
    images, imeta = load_split_codes(cfg.image_codes, "train")
    vocab = build_vocab(cfg, speech, images, smeta, imeta)
    sources = TaskSources(vocab, speech, images, cfg.caption_dropout, cfg.cm3_rate, cfg.seed)
    return model_cfg, cfg, vocab, sources
