"""Tiny configs, builders and small helpers that several test files share (fixtures are in
conftest.py): tests import from here, never from each other."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from conftest import TINY

from lm.model import LMConfig, new_lm
from lm.train import LMTrainConfig
from lm.vocab import MultimodalVocab, train_bpe
from speechtok import ImageTokenizer, ImageTokenizerConfig
from speechtok.training.batches import next_batch, step_batches

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

TINY_IMAGE = dict(resolution=16, channels=8, latent_dim=8, codebook_size=16, codebook_dim=4,
                  norm_groups=4, dead_code_steps=2)


def tiny_image_tokenizer(**overrides) -> ImageTokenizer:
    """A random image tokenizer of TINY_IMAGE sizes, its codebook k-means-initialised."""
    tok = ImageTokenizer(ImageTokenizerConfig(**{**TINY_IMAGE, **overrides}))
    tok.train()
    tok(torch.rand(4, 3, tok.config.resolution, tok.config.resolution) * 2 - 1)  # k-means init
    return tok.eval()


TINY_LM = LMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                   intermediate_size=64, max_positions=128)


def lm_train_config(codes, **kw):
    """A 4-step LM training config over the `codes` fixture's speech and image codes."""
    return LMTrainConfig(speech_codes=str(codes / "speech_codes"),
                         image_codes=str(codes / "image_codes"), text_vocab_size=280,
                         block_size=64, samples_per_step=4, steps=4, eval_every=2, save_every=2,
                         warmup_steps=1, eval_batches=1, **kw)


CAPTIONS = ["the letter a", "the letter b", "the digit 7", "a red square"]


def make_bundle(path, speech_tokenizer=None, image_tokenizer=None, text=CAPTIONS, vocab=None,
                config=TINY_LM):
    """A bundle as `lm train` writes it, with random weights (no training)."""
    vocab = vocab or MultimodalVocab.build(
        train_bpe(text * 4, 300),
        speech_tokenizer.config.codebook_size if speech_tokenizer else 0,
        image_tokenizer.config.codebook_size if image_tokenizer else 0)
    torch.manual_seed(0)  # the LM's weights must not depend on the tokenizers built before it
    model = new_lm(config, len(vocab), vocab.pad_id, vocab.bos_id, vocab.eos_id)
    model.save_pretrained(path)
    vocab.save_pretrained(path)
    if speech_tokenizer is not None:
        speech_tokenizer.save_pretrained(path / "speech_tokenizer")
    if image_tokenizer is not None:
        image_tokenizer.save_pretrained(path / "image_tokenizer")
    return path


TINY_VOCODER = dict(dim=16, intermediate_dim=32, blocks=2)


TINY_ARGS = [f"--{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}"
             for k, v in TINY.items()]
FAST = ["--batch_size", "2", "--segment_seconds", "0.4", "--eval_every", "2",
        "--save_every", "2", "--warmup_steps", "1", "--eval_max_items", "2"]


def collect_batches(make_batch, start, steps, workers):
    """The batches of steps start..steps-1 through the step loader with `workers` processes."""
    it = step_batches(make_batch, start, steps, workers, seed=0)
    return [next_batch(it, s) for s in range(start, steps)]


# Two steps of everything, tiny models (the sizes of TINY in conftest.py and TINY_IMAGE).
RECIPE_TINY_SPEECH = ["--speech.channels", "16", "--speech.latent_dim", "8",
               "--speech.codebook_size", "16", "--speech.codebook_dim", "4",
               "--speech.decoder_channels", "16", "--speech.dilations", "[1, 3]",
               "--speech.griffin_lim_iters", "4", "--speech.dead_code_steps", "2",
               "--speech.speaker_channels", "16", "--speech.steps", "2",
               "--speech.batch_size", "2", "--speech.segment_seconds", "0.4",
               "--speech.warmup_steps", "1", "--speech.eval_max_items", "2"]
RECIPE_TINY_IMAGE = ["--image.resolution", "16", "--image.channels", "8", "--image.latent_dim", "8",
              "--image.norm_groups", "4", "--image.codebook_size", "16",
              "--image.codebook_dim", "4", "--image.num_res_blocks", "1", "--image.steps", "2",
              "--image.batch_size", "4", "--image.warmup_steps", "1", "--image.eval_max_items", "8",
              "--image.grid_images", "4", "--image.disc_channels", "8", "--image.disc_layers", "1"]
RECIPE_TINY_LM = ["--lm.hidden_size", "32", "--lm.num_layers", "1", "--lm.num_heads", "2",
           "--lm.num_kv_heads", "1", "--lm.intermediate_size", "64", "--lm.max_positions", "512",
           "--lm.text_vocab_size", "280", "--lm.block_size", "256", "--lm.samples_per_step", "4",
           "--lm.steps", "2", "--lm.warmup_steps", "1", "--lm.eval_batches", "1",
           "--lm.tensorboard", "false"]


def load_recipe(name: str):
    """recipes/<name>/run.py as a module (recipes/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / name / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recipe_results(out: Path) -> dict:
    """The results.json a recipe run wrote into `out`."""
    return json.loads((out / "results.json").read_text())
