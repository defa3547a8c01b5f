"""Training batches from pre-tokenised codes: sample formats × a weighted mixture → packed blocks.

`TaskSources` turns the code datasets written by `lm tokenize` into id sequences on demand:
  "speech"          speech units (deduplicated) as a GSLM unit LM
  "caption_image"   caption → image (DALL-E); the caption is one of the item's captions
                    ("text" and any "alt_texts"), and with probability `caption_dropout` it
                    is dropped (the empty caption), so the LM also learns the unconditional
                    distribution that classifier-free guidance needs at sampling time;
                    `caption_noise` replaces each caption token by a random text token with
                    that probability (off by default: formats.noisy_text)
  "maskgit_image"   caption → image as MaskGIT (bidirectional image span, cosine-scheduled
                    <mask>s), the same caption choice and dropout, for parallel decoding
  "image_caption"   image → caption
  "speech_text" / "text_speech"  speech ↔ transcript (ASR-like / TTS-like, VoxLM)
  "text"            the captions / transcripts alone
and `cm3_rate` of all samples are rewritten in CM3's causal-masked form. `PackedBatches`
draws each step's samples from a `Mixture` of those tasks and packs them into blocks; all of it
is a function of (seed, step), so a resumed run sees the batches the killed run would have.
"""

from __future__ import annotations

import random

import torch

from . import formats
from .mixture import Mixture
from .packing import Sample, as_sample, collate_blocks, pack
from .vocab import MultimodalVocab

TASKS = ("speech", "caption_image", "maskgit_image", "image_caption", "speech_text",
         "text_speech", "text")


def corpus_texts(*datasets) -> list[str]:
    """Every non-empty caption and transcript of the code datasets: the "text" column and the
    other captions of each item ("alt_texts", where the dataset has them)."""
    out = []
    for ds in datasets:
        if ds is None:
            continue
        out += [t for t in ds["text"] if t]
        if "alt_texts" in ds.column_names:
            out += [t for alts in ds["alt_texts"] for t in (alts or []) if t]
    return out


class TaskSources:
    """Index-addressable samples of each task (`len(sources[task])`, `sources[task][i]`)."""

    def __init__(self, vocab: MultimodalVocab, speech=None, images=None,
                 caption_dropout: float = 0.1, cm3_rate: float = 0.0, seed: int = 0,
                 caption_noise: float = 0.0):
        if not all(0 <= x <= 1 for x in (caption_dropout, cm3_rate, caption_noise)):
            raise ValueError("caption_dropout, cm3_rate and caption_noise must lie in [0, 1]")
        self.vocab, self.speech, self.images = vocab, speech, images
        self.caption_dropout, self.cm3_rate, self.seed = caption_dropout, cm3_rate, seed
        self.caption_noise = caption_noise
        # captions and transcripts, for the text-only task (read once: a column is a list)
        self.texts = corpus_texts(speech, images)

    def available(self) -> dict[str, int]:
        """Tasks this data supports, with their number of items."""
        out = {}
        if self.speech is not None and len(self.speech):
            out["speech"] = len(self.speech)
            if any(self.speech["text"]):
                out.update(speech_text=len(self.speech), text_speech=len(self.speech))
        if self.images is not None and len(self.images):
            out.update(caption_image=len(self.images), maskgit_image=len(self.images),
                       image_caption=len(self.images))
        if self.texts:
            out["text"] = len(self.texts)
        return out

    def sample(self, task: str, index: int, draw: int) -> list[int] | Sample:
        """The ids of item `index` of `task` (a `Sample` with its own labels and bidirectional
        span for maskgit_image); `draw` seeds its random choices (dropout, CM3, masks)."""
        # a string seed is hashed with SHA-512: the same in every process (hash() of a str is
        # salted per process, which made processes disagree about caption dropout)
        rng = random.Random(f"{self.seed}:{task}:{index}:{draw}")
        v = self.vocab
        if task == "text":
            ids = formats.text_only(v, self.texts[index])
        elif task in ("speech", "speech_text", "text_speech"):
            row = self.speech[index]
            if task == "speech":
                ids = formats.speech_only(v, row["units"])
            elif task == "speech_text":
                ids = formats.speech_to_text(v, row["units"], row["text"])
            else:
                ids = formats.text_to_speech(v, row["text"], row["units"])
        elif task in ("caption_image", "maskgit_image", "image_caption"):
            row = self.images[index]
            if task != "image_caption":
                # one of the item's captions, uniformly (COCO gives five per image; the
                # metadata's "alt_texts" carries the others)
                captions = [row["text"], *(row.get("alt_texts") or [])]
                caption = captions[rng.randrange(len(captions))] if len(captions) > 1 \
                    else captions[0]
                caption = "" if rng.random() < self.caption_dropout else caption
                caption = formats.noisy_text(v, caption, self.caption_noise, rng)
                if task == "maskgit_image":  # no CM3 rewrite: its span is already masked
                    grid = torch.as_tensor(row["codes"]).flatten()
                    return formats.maskgit_image(v, caption, grid,
                                                 formats.random_mask(len(grid), rng))
                ids = formats.caption_to_image(v, caption, row["codes"])
            else:
                ids = formats.image_to_caption(v, row["codes"], row["text"])
        else:
            raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})")
        if self.cm3_rate and len(ids) > 3 and rng.random() < self.cm3_rate:
            ids = formats.causal_masked(v, ids, *formats.random_span(len(ids), rng))
        return ids


class _TaskView:
    def __init__(self, sources: TaskSources, task: str, n: int):
        self.sources, self.task, self.n = sources, task, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.task, i


class PackedBatches:
    """Each step: `samples_per_step` samples drawn from the task mixture, packed into blocks of
    `block_size` and collated (input_ids, labels, position_ids, attention_mask, modality).

    `samples_per_step` is the global batch: with `world` processes, process `rank` gets blocks
    rank, rank + world, ... of the same packing (padded with empty blocks to a multiple of
    `world`), so any number of processes sees the same global batch as one.
"""

    def __init__(self, sources: TaskSources, weights: dict[str, float], block_size: int,
                 samples_per_step: int, seed: int = 0):
        available = sources.available()
        missing = [t for t, w in weights.items() if w > 0 and t not in available]
        if missing:
            raise ValueError(f"no data for task(s) {', '.join(missing)} (this data supports "
                             f"{', '.join(available) or 'nothing'})")
        self.sources, self.block_size, self.samples_per_step = sources, block_size, samples_per_step
        views = {t: _TaskView(sources, t, n) for t, n in available.items()}
        self.mixture = Mixture(views, weights, seed)

    def __call__(self, step: int, rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
        picks = self.mixture.draw(step, self.samples_per_step)
        samples = [as_sample(self.sources.sample(task, i, step)) for _, (task, i) in picks]
        blocks, _ = pack(samples, self.block_size)
        blocks += [[] for _ in range(-len(blocks) % world)]
        blocks = blocks[rank::world]
        batch = collate_blocks(blocks, self.block_size, self.sources.vocab.pad_id)
        batch["modality"] = self.sources.vocab.modality(batch["labels"].clamp_min(0))
        return batch
