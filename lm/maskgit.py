"""MaskGIT decoding (Chang et al. 2022): an image grid in T parallel steps instead of h·w.

The LM learned the "maskgit_image" format (lm.formats.maskgit_image): after the caption and
<boi>, the image span attends both ways and every <mask> predicts its own code. Decoding starts
from an all-<mask> span and, at step t of T:

1. one forward of the span against the prompt's cached keys and values (the prompt is causal
   and never sees the span, so it is run once), conditional and unconditional rows batched
   together for classifier-free guidance, logits = cond + (s − 1)(cond − uncond), as
   lm.generate does;
2. a code is drawn for every still-masked position (temperature / top-k / top-p as for causal
   decoding; greedy at temperature 0), restricted to image codes;
3. all but the ⌊N · cos(π/2 · (t+1)/T)⌋ least confident of them are kept (the cosine schedule,
   §3.2); confidence is the drawn code's log-probability plus Gumbel noise scaled by
   `choice_temperature` · (1 − (t+1)/T), MaskGIT's annealed randomness in the choice
   (none at temperature 0, so greedy decoding is deterministic); the rest are masked again.

After the last step no position is masked: the result is exactly N codes, in the same raster
order as causal decoding's.
"""

from __future__ import annotations

import inspect
import math

import torch

from .generate import Sampling, guidance_rows
from .vocab import MultimodalVocab


def masked_after(step: int, steps: int, n: int) -> int:
    """Codes still masked after step `step` (0-based) of `steps`: ⌊n · cos(π/2 · (step+1) /
    steps)⌋, so 0 after the last."""
    return math.floor(n * math.cos(math.pi / 2 * (step + 1) / steps) + 1e-9)


def cached_state(model, out) -> tuple[object, str]:
    """(the key/value cache of a forward's output, the keyword that passes it back in):
    `cache` in transformers ≥ 5.2x, `past_key_values` before."""
    if "cache" in inspect.signature(model.forward).parameters:
        return out.cache, "cache"
    return out.past_key_values, "past_key_values"


def span_batch(prompts: list[list[int]], n_tokens: int, pad_id: int, mask_id: int, device
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids (R, P + N), position_ids, attention_mask (R, 1, P + N, P + N) bool) for
    prompts left-padded to P tokens followed by N <mask>s: causal over each row's real
    prompt tokens, the span attending to the whole prompt and to itself both ways, padding to
    itself only."""
    width = max(len(p) for p in prompts)
    total = width + n_tokens
    ids = torch.full((len(prompts), total), pad_id, dtype=torch.long)
    real = torch.zeros((len(prompts), total), dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):width] = torch.tensor(p, dtype=torch.long)
        real[i, width - len(p):] = True
    ids[:, width:] = mask_id
    positions = (real.long().cumsum(1) - 1).clamp(min=0)
    causal = torch.ones(total, total, dtype=torch.bool).tril()
    in_span = torch.zeros(total, dtype=torch.bool)
    in_span[width:] = True
    both_ways = in_span[:, None] & in_span[None, :]
    pair = real[:, :, None] & real[:, None, :]
    mask = (pair & (causal | both_ways)) | (torch.eye(total, dtype=torch.bool) & ~real[:, :, None])
    return ids.to(device), positions.to(device), mask[:, None].to(device)


@torch.inference_mode()
def maskgit_generate(model, vocab: MultimodalVocab, prompts: list[list[int]], n_tokens: int,
                     steps: int = 8, sampling: Sampling | None = None,
                     guidance_scale: float = 1.0, uncond_prompts: list[list[int]] | None = None,
                     choice_temperature: float = 4.5) -> torch.Tensor:
    """(B, n_tokens) image codes for prompts ending in <boi>, in `steps` forwards (module
    docstring); with several codes a cell, flat depth-first (lm.vocab) and each drawn from its
    level's codes. Draws from the current RNG (wrap in lm.generate.seeded for a seed)."""
    sampling = sampling or Sampling()
    if not prompts or n_tokens < 1:
        raise ValueError("give at least one prompt and n_tokens ≥ 1")
    if not 1 <= steps <= n_tokens:
        raise ValueError(f"steps must lie in [1, {n_tokens}] (one code at least per step), "
                         f"got {steps}")
    guided = guidance_scale != 1.0
    rows = guidance_rows(prompts, uncond_prompts, guided)
    device = next(model.parameters()).device
    ids, positions, mask = span_batch(rows, n_tokens, vocab.pad_id, vocab.mask_id, device)
    start, b = ids.shape[1] - n_tokens, len(prompts)
    # several levels of codes (lm.vocab): token j of the span draws from its level's K ids
    levels = vocab.image_levels
    if vocab.image_segments and n_tokens != sum(vocab.image_segments):
        raise ValueError(f"n_tokens {n_tokens} is not the hierarchy's {vocab.image_segments}")
    if n_tokens % vocab.image_depth:
        raise ValueError(f"n_tokens {n_tokens} is not a whole number of cells of "
                         f"{vocab.image_depth} codes")
    lo, k = vocab.image_offset, vocab.image_size // levels
    level_offset = vocab.image_levels_at(torch.arange(n_tokens, device=device)) * k + lo
    # the logits of each token's own level: columns level·K … level·K + K - 1 of the image range
    own_level = (level_offset - lo)[:, None] + torch.arange(k, device=device)
    codes = torch.zeros((b, n_tokens), dtype=torch.long, device=device)
    masked = torch.ones((b, n_tokens), dtype=torch.bool, device=device)
    warpers = sampling.warpers()
    # The prompt attends causally and never to the span, so its keys and values are the same at
    # every step: computed once, and each step runs the span alone against them.
    out = model(input_ids=ids[:, :start], position_ids=positions[:, :start],
                attention_mask=mask[:, :, :start, :start], use_cache=True)
    cache, cache_arg = cached_state(model, out)
    span_mask = mask[:, :, start:, :]
    for step in range(steps):
        logits = model(input_ids=ids[:, start:], position_ids=positions[:, start:],
                       attention_mask=span_mask, use_cache=True,
                       **{cache_arg: cache}).logits[:, :, lo:lo + k * levels].float()
        cache.crop(-n_tokens)  # drop the span's keys and values again
        if levels > 1:
            logits = logits.gather(2, own_level.expand(logits.shape[0], -1, -1))
        if guided:
            cond, uncond = logits.chunk(2)
            logits = cond + (guidance_scale - 1.0) * (cond - uncond)
        flat = logits.reshape(b * n_tokens, k)
        warped = warpers(None, flat) if len(warpers) else flat
        log_p = torch.log_softmax(warped, dim=-1)
        if sampling.do_sample:
            drawn = torch.multinomial(log_p.exp(), 1).squeeze(1)
        else:
            drawn = log_p.argmax(-1)
        confidence = log_p.gather(1, drawn[:, None]).view(b, n_tokens)
        drawn = drawn.view(b, n_tokens)
        noise_scale = choice_temperature * (1 - (step + 1) / steps)
        if sampling.do_sample and noise_scale > 0:
            gumbel = -torch.log(-torch.log(torch.rand_like(confidence).clamp(1e-20, 1.0)))
            confidence = confidence + noise_scale * gumbel
        codes = torch.where(masked, drawn, codes)
        # only positions masked before this step compete; the decided ones stay
        confidence = confidence.masked_fill(~masked, float("inf"))
        keep_masked = min(masked_after(step, steps, n_tokens), int(masked.sum(1).min()) - 1)
        remask = torch.zeros_like(masked)
        if keep_masked > 0:
            lowest = confidence.topk(keep_masked, dim=1, largest=False).indices
            remask.scatter_(1, lowest, True)
        masked = remask
        span = torch.where(masked, vocab.mask_id, codes + level_offset)
        ids[:, start:] = span.repeat(2, 1) if guided else span
    return codes.cpu()
