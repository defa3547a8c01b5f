"""MaskGIT over the shared LM: the training format and its attention mask, the decoding schedule,
exactly h×w codes in T forwards, and the pipeline's output format (tiny random models)."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from helpers import TINY_LM, lm_train_config

from lm.formats import cosine_mask_count, maskgit_image, random_mask
from lm.generate import Sampling
from lm.loss import IGNORE
from lm.maskgit import masked_after, maskgit_generate, span_batch
from lm.packing import collate_blocks, pack
from lm.pipelines import TextToImage


def test_sample_masks_codes_and_labels_only_the_masked_ones(lm):
    _, v = lm
    grid = torch.tensor([[1, 2], [3, 0]])
    masked = torch.tensor([True, False, False, True])
    s = maskgit_image(v, "the letter a", grid, masked)
    text = v.encode_text("the letter a")
    start = 2 + len(text)  # <bos> text <boi>
    assert s.ids[:start].tolist() == [v.bos_id, *text, v.boi_id]
    span = s.ids[start:start + 4].tolist()
    assert span == [v.mask_id, v.image_offset + 2, v.image_offset + 3, v.mask_id]
    assert s.ids[-1] == v.eoi_id and s.bidirectional == (start, start + 4)
    assert s.labels[:start - 1].tolist() == [*text, v.boi_id]  # next-token on the caption
    assert s.labels[start:start + 4].tolist() == [v.image_offset + 1, IGNORE, IGNORE,
                                                  v.image_offset + 0]  # own code where masked
    assert bool((s.labels[start - 1] == IGNORE) & (s.labels[-1] == IGNORE))


def test_attention_is_bidirectional_inside_the_span_only():
    from lm.packing import Sample

    a = Sample(torch.arange(6), torch.full((6,), IGNORE), (2, 5))
    b = torch.arange(4)  # a causal sample in the same block
    batch = collate_blocks([[a, b]], 12, pad_id=0)
    m = batch["attention_mask"][0, 0]
    assert bool(m[2, 4]) and bool(m[4, 2]) and bool(m[3, 3])  # span: both ways
    assert bool(m[4, 1]) and not bool(m[1, 4])  # prefix → span is not visible
    assert not bool(m[5, 6]) and bool(m[5, 4]) and not bool(m[4, 5])  # <eoi> after: causal
    assert not bool(m[7, 3]) and not bool(m[3, 7])  # samples stay apart
    assert bool(m[9, 6]) and not bool(m[6, 9])  # the causal sample stays causal
    assert batch["labels"][0, :6].tolist() == [IGNORE] * 6  # its own labels, not shifted ids
    assert batch["labels"][0, 6:9].tolist() == [1, 2, 3]
    blocks, cut = pack([a, b], 5)
    assert cut == 1 and blocks[0][0].bidirectional == (2, 5) and len(blocks[0][0]) == 5


def test_cosine_schedule_of_training_masks():
    rng = random.Random(0)
    counts = [cosine_mask_count(64, rng) for _ in range(4000)]
    assert min(counts) >= 1 and max(counts) <= 64
    # E[cos(π/2 · U)] = 2/π: on average 64 · 0.637 codes are masked
    assert sum(counts) / len(counts) == pytest.approx(64 * 2 / math.pi, rel=0.03)
    flags = random_mask(16, random.Random(3))
    assert flags.dtype == torch.bool and flags.sum() == cosine_mask_count(16, random.Random(3))


def test_decoding_schedule_unmasks_everything_at_the_end():
    for n, steps in ((64, 8), (16, 16), (10, 3), (5, 1)):
        left = [masked_after(t, steps, n) for t in range(steps)]
        assert left[-1] == 0 and all(a >= b for a, b in zip(left, left[1:], strict=False))
        assert left[0] < n


def test_span_batch_mask_and_positions():
    ids, pos, mask = span_batch([[5, 6, 7], [8]], 3, pad_id=0, mask_id=9, device="cpu")
    assert ids.tolist() == [[5, 6, 7, 9, 9, 9], [0, 0, 8, 9, 9, 9]]
    assert pos.tolist() == [[0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 2, 3]]
    m = mask[:, 0]
    assert bool(m[0, 3, 5]) and bool(m[0, 5, 3]) and not bool(m[0, 1, 2])
    assert not bool(m[1, 3, 0]) and bool(m[1, 3, 2]) and bool(m[1, 0, 0])  # padding: itself


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_exactly_hw_codes_in_t_forwards(lm, guidance):
    model, v = lm
    calls = []
    hook = model.register_forward_hook(lambda mod, inp, out: calls.append(1))
    prompts = [[v.bos_id, *v.encode_text("the letter a"), v.boi_id], [v.bos_id, v.boi_id]]
    uncond = [[v.bos_id, v.boi_id]] * 2
    torch.manual_seed(0)
    drawn = maskgit_generate(model, v, prompts, 16, steps=4, sampling=Sampling(temperature=1.0),
                             guidance_scale=guidance, uncond_prompts=uncond)
    hook.remove()
    assert drawn.shape == (2, 16) and drawn.dtype == torch.long
    assert 0 <= int(drawn.min()) and int(drawn.max()) < v.image_size
    # the prompt once, then T forwards of the span, conditional and unconditional rows batched
    assert len(calls) == 1 + 4
    greedy = [maskgit_generate(model, v, prompts, 16, 4, Sampling(temperature=0)) for _ in "ab"]
    assert torch.equal(greedy[0], greedy[1])
    with pytest.raises(ValueError, match="steps"):
        maskgit_generate(model, v, prompts, 16, steps=17)


def test_pipeline_maskgit_has_the_causal_output_format(bundle):
    pipe = TextToImage.from_pretrained(bundle)
    kwargs = dict(num_images=2, seed=1, temperature=1.0, guidance_scale=2.0)
    causal = pipe(["the letter a", "the digit 7"], **kwargs)
    fast = pipe(["the letter a", "the digit 7"], decoding="maskgit", steps=4, **kwargs)
    assert fast.images.shape == causal.images.shape and fast.grids.shape == causal.grids.shape
    assert fast.grids.dtype == causal.grids.dtype and fast.captions == causal.captions
    assert fast.settings["decoding"] == "maskgit" and fast.settings["steps"] == 4
    again = pipe(["the letter a", "the digit 7"], decoding="maskgit", steps=4, **kwargs)
    assert torch.equal(fast.grids, again.grids)  # seeded
    with pytest.raises(ValueError, match="decoding"):
        pipe("the letter a", decoding="diffusion")


def test_the_lm_learns_the_maskgit_task(codes):
    from dataclasses import replace

    from lm.train import train_lm

    cfg = replace(lm_train_config(codes, lr=3e-3, task_weights={"maskgit_image": 1.0,
                                                     "caption_image": 1.0}),
                  steps=40, eval_every=20, save_every=40)
    train_lm(codes / "mg", TINY_LM, cfg)
    history = json.loads((codes / "mg" / "train_history.json").read_text())
    assert history[-1]["eval/loss/image"] < history[0]["eval/loss/image"] - 0.3
    pipe = TextToImage.from_pretrained(codes / "mg")
    out = pipe("colour number", num_images=2, decoding="maskgit", steps=4, seed=0)
    assert out.grids.shape == (2, pipe.layout.grid, pipe.layout.grid)


def test_cli_generates_with_maskgit(bundle, tmp_path, capsys):
    from lm.cli import main

    out = tmp_path / "g.png"
    assert main(["generate", "image", "--model", str(bundle), "--caption", "the letter a",
                 "--num", "2", "--decoding", "maskgit", "--steps", "3", "--seed", "0",
                 "--out", str(out)]) in (0, None)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["decoding"] == "maskgit" and printed["steps"] == 3 and out.exists()
