"""Constrained sampling from the multimodal LM, through `model.generate`.

Two logits processors carry the multimodal rules, so transformers' sampling options, KV cache,
stopping criteria and streamers keep working (Chameleon and Emu3 do the same):

- `ModalityMask`: inside an audio span (after <boa>, before <eoa>) only speech units and <eoa>
  may be drawn; inside an image span exactly h×w image codes and then <eoi>; outside any span,
  only text tokens and specials. With several codes per position (lm.vocab: depth-first, a
  range of K ids per level), the token at index j of a span must come from level j mod D (in a
  hierarchy of grids, the level of the grid j falls in), and <eoa> may only follow a whole
  position. The rule is a lookup in a precomputed (rows, vocab) boolean table, indexed by a
  per-row state computed with tensor ops from the ids: no Python loop per step.
- `ClassifierFreeGuidance` (Ho & Salimans 2022; for token LMs, Make-A-Scene / Parti / Emu3):
  the conditional prompts (rows [0, B)) and the unconditional ones (empty caption, rows [B, 2B))
  run as ONE batched forward per step; logits = uncond + s·(cond − uncond). `PairedSampler` then
  draws one token per pair from the guided distribution (with the usual temperature / top-k /
  top-p warpers) and hands both rows a one-hot score, so greedy selection in `generate` makes
  both branches continue the same sequence. (transformers' own `guidance_scale` runs the
  unconditional branch as a second model call per step instead: half the batching.)

Order of processing per step: guidance → modality mask → warpers → draw. Masking after guidance
keeps −inf out of the difference (−inf − −inf is NaN); warping after masking means top-k / top-p
choose among allowed tokens only.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .vocab import TEXT, MultimodalVocab

# states of a row (and rows of ModalityMask's table; levels > 0 of a multi-code span follow)
OUTSIDE, IN_AUDIO, IN_IMAGE, IMAGE_DONE = 0, 1, 2, 3


class ModalityMask(LogitsProcessor):
    """Scores of tokens the current span does not allow become −inf (module docstring).

    The span state of each row is computed from all ids on the first call and then updated
    from the one new token per step (a few tensor ops, no Python loop over rows or ids)."""

    def __init__(self, vocab: MultimodalVocab, image_tokens: int):
        if image_tokens < 1:
            raise ValueError(f"image_tokens must be ≥ 1, got {image_tokens}")
        self.vocab, self.image_tokens = vocab, image_tokens
        self.markers = torch.tensor([vocab.boa_id, vocab.eoa_id, vocab.boi_id, vocab.eoi_id])
        self._penalty: torch.Tensor | None = None
        # (length, last ids, base state, tokens since <boi>, tokens since <boa>)
        self._step: tuple | None = None

    @staticmethod
    def _level_ranges(offset: int, size: int, depth: int, ids: torch.Tensor
                      ) -> list[torch.Tensor]:
        k = size // depth
        return [(ids >= offset + d * k) & (ids < offset + (d + 1) * k) for d in range(depth)]

    def penalty(self, width: int, device) -> torch.Tensor:
        """(rows, width) additive scores: 0 where the row's state allows the token, −inf
        elsewhere; rows OUTSIDE, IN_AUDIO, IN_IMAGE, IMAGE_DONE (level 0 of the spans), then the
        audio levels 1 … D_a − 1 and the image levels 1 … D_i − 1. Ids past the vocabulary (a
        model whose embedding was padded to a round size) are never allowed."""
        t = self._penalty
        if t is None or t.shape[1] != width or t.device != torch.device(device):
            v = self.vocab
            ids = torch.arange(width)
            modality = v.modality(ids.clamp(max=len(v) - 1))
            real = ids < len(v)
            audio = self._level_ranges(v.audio_offset, v.audio_size, v.audio_depth, ids)
            image = self._level_ranges(v.image_offset, v.image_size, v.image_levels, ids)
            allowed = torch.stack([
                real & (modality == TEXT),
                real & (audio[0] | (ids == v.eoa_id)),  # <eoa> after whole positions only
                real & image[0],
                ids == v.eoi_id,
                *[real & level for level in audio[1:]],
                *[real & level for level in image[1:]],
            ])
            t = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf")).to(device)
            # what each id does to the span: open audio / image, close, or nothing (-1)
            effect = torch.full((width,), -1, dtype=torch.long)
            effect[[v.boa_id, v.eoa_id, v.boi_id, v.eoi_id]] = torch.tensor(
                [IN_AUDIO, OUTSIDE, IN_IMAGE, OUTSIDE])
            self._penalty, self._effect = t, effect.to(device)
        return t

    def _full(self, input_ids: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(base state, tokens since the last <boi>, tokens since the last <boa>) of each row,
        from all of `input_ids`."""
        pos = torch.arange(1, input_ids.shape[1] + 1, device=input_ids.device)
        markers = self.markers.to(input_ids.device)
        # last position (1-based; 0 = absent) of each marker: (B, 4)
        last = ((input_ids[:, :, None] == markers) * pos[None, :, None]).amax(1)
        # the latest marker decides: <boa> audio, <boi> image, <eoa> / <eoi> (or none) outside
        opens = torch.tensor([IN_AUDIO, OUTSIDE, IN_IMAGE, OUTSIDE], device=input_ids.device)
        base = torch.where(last.amax(1) > 0, opens[last.argmax(1)], OUTSIDE)
        return base, input_ids.shape[1] - last[:, 2], input_ids.shape[1] - last[:, 0]

    def states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B,) state of each row after `input_ids` (B, T): OUTSIDE, IN_AUDIO, IN_IMAGE or
        IMAGE_DONE."""
        base, since_boi, _ = self._full(input_ids)
        return self._final(base, since_boi)

    def _final(self, base: torch.Tensor, since_boi: torch.Tensor) -> torch.Tensor:
        done = (base == IN_IMAGE) & (since_boi >= self.image_tokens)
        return torch.where(done, IMAGE_DONE, base)

    def _rows(self, base: torch.Tensor, since_boi: torch.Tensor, since_boa: torch.Tensor
              ) -> torch.Tensor:
        """The penalty row of each state: the level of the next code inside a multi-code span
        picks one of the level rows (penalty's docstring)."""
        state = self._final(base, since_boi)
        da, di = self.vocab.audio_depth, self.vocab.image_levels
        if da == 1 and di == 1:
            return state
        audio_level, image_level = since_boa % da, self.vocab.image_levels_at(since_boi)
        rows = torch.where((state == IN_AUDIO) & (audio_level > 0), 3 + audio_level, state)
        return torch.where((state == IN_IMAGE) & (image_level > 0), 3 + da - 1 + image_level,
                           rows)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor
                 ) -> torch.FloatTensor:
        penalty = self.penalty(scores.shape[-1], scores.device)
        length, step = input_ids.shape[1], self._step
        if (step is not None and length == step[0] + 1 and step[1].shape[0] == len(input_ids)
                and torch.equal(input_ids[:, -2], step[1])):  # one new token: update
            new = input_ids[:, -1]
            effect = self._effect[new]
            base = torch.where(effect >= 0, effect, step[2])
            since_boi = torch.where(effect == IN_IMAGE, 0, step[3] + 1)
            since_boa = torch.where(effect == IN_AUDIO, 0, step[4] + 1)
        else:  # first call of a generation
            base, since_boi, since_boa = self._full(input_ids)
        self._step = (length, input_ids[:, -1], base, since_boi, since_boa)
        return scores + penalty[self._rows(base, since_boi, since_boa)]
class ClassifierFreeGuidance(LogitsProcessor):
    """Rows [0, B) conditional, [B, 2B) unconditional → guided logits in both halves.

    Written cond + (s − 1)(cond − uncond), which is uncond + s(cond − uncond) rearranged so
    that s = 1 returns the conditional logits bit for bit."""

    def __init__(self, scale: float):
        self.scale = float(scale)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor
                 ) -> torch.FloatTensor:
        cond, uncond = scores.chunk(2)
        guided = cond + (self.scale - 1.0) * (cond - uncond)
        return torch.cat([guided, guided])


class PairedSampler(LogitsProcessor):
    """Draw one token per (cond, uncond) pair and return a one-hot score for both rows, so
    `generate(do_sample=False)` takes it in both branches."""

    def __init__(self, warpers: LogitsProcessorList, do_sample: bool):
        self.warpers, self.do_sample = warpers, do_sample

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor
                 ) -> torch.FloatTensor:
        b = scores.shape[0] // 2
        cond = self.warpers(input_ids[:b], scores[:b])
        if self.do_sample:  # as transformers' sampling step does, so the RNG use is the same
            token = torch.multinomial(torch.softmax(cond, dim=-1), num_samples=1)
        else:
            token = cond.argmax(-1, keepdim=True)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, token.repeat(2, 1), 0.0)


@dataclass
class Sampling:
    """How to draw tokens. temperature 0 = greedy; top_k 0 and top_p 1 = off."""
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be ≥ 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be ≥ 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def warpers(self) -> LogitsProcessorList:
        """The warpers `generate` itself would build for these settings, in its order."""
        out = LogitsProcessorList()
        if self.do_sample:
            if self.temperature != 1.0:
                out.append(TemperatureLogitsWarper(self.temperature))
            if self.top_k:
                out.append(TopKLogitsWarper(self.top_k))
            if self.top_p < 1.0:
                out.append(TopPLogitsWarper(self.top_p))
        return out


def left_pad(rows: list[list[int]], pad_id: int, device=None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths → (input_ids, attention_mask), padded on the left so every
    row's next token comes at the same position (what decoder-only `generate` needs)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


def guidance_rows(prompts: list[list[int]], uncond_prompts: list[list[int]] | None,
                  guided: bool) -> list[list[int]]:
    """The rows of one batched forward: the prompts, then (when `guided`) one unconditional
    prompt per prompt, as ClassifierFreeGuidance splits them."""
    rows = list(prompts)
    if guided:
        if uncond_prompts is None or len(uncond_prompts) != len(prompts):
            raise ValueError("classifier-free guidance needs one unconditional prompt per prompt")
        rows += list(uncond_prompts)
    return rows


@contextmanager
def seeded(seed: int | None, device: torch.device):
    """Draw from a forked RNG seeded with `seed` (the caller's stream is left as it was); with
    no seed, from the global RNG, so repeated calls differ."""
    devices = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        yield


@torch.inference_mode()
def generate_ids(model, vocab: MultimodalVocab, prompts: list[list[int]], *, stop_id: int,
                 max_new_tokens: int, sampling: Sampling | None = None,
                 image_tokens: int = 1, guidance_scale: float = 1.0,
                 uncond_prompts: list[list[int]] | None = None, streamer=None,
                 batched_guidance_at_one: bool = False, **generate_kwargs
                 ) -> list[torch.Tensor]:
    """Continue each prompt under the modality mask until `stop_id` or `max_new_tokens`.

    With `guidance_scale` ≠ 1 (or `batched_guidance_at_one`, to test the batched path), the
    `uncond_prompts` (one per prompt) run as the unconditional branch. Returns the new tokens
    of each prompt, up to and including `stop_id` when it was reached. Other keyword
    arguments go to `model.generate` (e.g. `min_new_tokens`).
    """
    sampling = sampling or Sampling()
    if not prompts:
        raise ValueError("no prompts")
    guided = guidance_scale != 1.0 or batched_guidance_at_one
    rows = guidance_rows(prompts, uncond_prompts if guided else None, guided)
    device = next(model.parameters()).device
    input_ids, attention_mask = left_pad(rows, vocab.pad_id, device)
    processors = LogitsProcessorList()
    if guided:
        processors.append(ClassifierFreeGuidance(guidance_scale))
    processors.append(ModalityMask(vocab, image_tokens))
    kwargs = dict(do_sample=False)  # greedy, or PairedSampler's one-hot draw
    if guided:
        processors.append(PairedSampler(sampling.warpers(), sampling.do_sample))
    elif sampling.do_sample:  # generate builds the same warpers itself
        kwargs = dict(do_sample=True, temperature=sampling.temperature, top_k=sampling.top_k,
                      top_p=sampling.top_p)
    with seeded(sampling.seed, device):
        out = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, logits_processor=processors,
            max_new_tokens=max_new_tokens, eos_token_id=stop_id, pad_token_id=vocab.pad_id,
            streamer=streamer, **kwargs, **generate_kwargs)
    new = out[: len(prompts), input_ids.shape[1]:].cpu()
    results = []
    for row in new:
        hit = (row == stop_id).nonzero()
        results.append(row[: int(hit[0]) + 1] if len(hit) else row)
    return results
