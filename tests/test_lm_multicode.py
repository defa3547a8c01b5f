"""Several codes per position (residual quantizers) through the LM: the depth-first layout of the
vocabulary, the formats, pre-tokenisation, the generation mask, and both pipelines, causal and
MaskGIT, back to images and audio (tiny random models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import speechlike, tiny_config, write_captioned_images
from helpers import make_bundle, tiny_image_tokenizer

from lm import formats
from lm.generate import ModalityMask, Sampling, generate_ids
from lm.maskgit import maskgit_generate
from lm.pipelines import SpeechContinuation, TextToImage
from lm.pretokenize import load_codes, pretokenize
from lm.vocab import AUDIO, IMAGE, TEXT, MultimodalVocab, train_bpe
from speechtok.speech import SpeechTokenizer
from speechtok.tokenizer import deinterleave, interleave

TEXTS = ["the letter a", "the digit 7", "a red square"] * 4


@pytest.fixture
def vocab():
    # audio: 2 levels of 8 codes; image: 3 levels of 5 codes
    return MultimodalVocab.build(train_bpe(TEXTS, 300), 8, 5, audio_depth=2, image_depth=3)


def test_depth_first_ids_round_trip_and_levels(vocab):
    assert vocab.audio_size == 16 and vocab.image_size == 15
    assert (vocab.audio_depth, vocab.image_depth) == (2, 3)
    grid = torch.tensor([[[0, 1], [2, 3]], [[4, 0], [1, 2]], [[3, 4], [0, 1]]])  # (3, 2, 2)
    flat = interleave(grid.flatten(1))
    assert flat[:3].tolist() == [0, 4, 3]  # cell (0, 0): its three levels first
    ids = vocab.image_ids(flat)
    assert ids[:3].tolist() == [vocab.image_offset + 0, vocab.image_offset + 5 + 4,
                                vocab.image_offset + 10 + 3]
    assert torch.equal(deinterleave(vocab.codes_from_ids(ids), 3).reshape(3, 2, 2), grid)
    assert vocab.modality(ids).eq(IMAGE).all() and vocab.modality(vocab.audio_ids(
        [7, 7])).eq(AUDIO).all()
    with pytest.raises(ValueError, match="out of range"):
        vocab.image_ids([5, 0, 0])  # a code ≥ K at any level
    with pytest.raises(ValueError, match="whole positions"):
        vocab.audio_ids([1, 2, 3])
    swapped = torch.stack([ids[1], ids[0], ids[2]])
    with pytest.raises(ValueError, match="level-1 code where level 0 belongs"):
        vocab.codes_from_ids(swapped)


def test_layout_survives_save_and_load(vocab, tmp_path):
    vocab.save_pretrained(tmp_path)
    loaded = MultimodalVocab.from_pretrained(tmp_path)
    assert (loaded.audio_depth, loaded.image_depth) == (2, 3)
    assert torch.equal(loaded.image_ids([1, 2, 3]), vocab.image_ids([1, 2, 3]))


def test_residual_speech_codes_are_not_deduplicated(vocab):
    units = interleave(torch.tensor([[1, 1, 1, 2], [3, 3, 3, 4]]))  # 4 frames, 2 levels
    ids = formats.speech_only(vocab, units)
    assert len(ids) == 4 + 8  # <bos> <boa> ... <eoa> <eos>: every frame kept
    assert vocab.units_from_ids(ids[2:-2]).tolist() == units.tolist()


def _check_rules(ids: list[int], v: MultimodalVocab, image_tokens: int) -> None:
    """Plain-Python reference of the depth-aware rules, token by token."""
    ka, ki = v.audio_size // v.audio_depth, v.image_size // v.image_depth
    span, count = None, 0
    for t in ids:
        if span == "image":
            if count < image_tokens:
                assert (t - v.image_offset) // ki == count % v.image_depth, (ids, t, count)
            else:
                assert t == v.eoi_id
            count += 1
            span = None if t == v.eoi_id else span
        elif span == "audio":
            if t == v.eoa_id:
                assert count % v.audio_depth == 0, (ids, count)  # whole frames only
                span = None
            else:
                assert (t - v.audio_offset) // ka == count % v.audio_depth, (ids, t, count)
                count += 1
        else:
            assert int(v.modality([t])[0]) == TEXT
            span, count = {v.boa_id: "audio", v.boi_id: "image"}.get(t), 0


def test_generation_mask_keeps_every_token_at_its_level(vocab):
    from helpers import TINY_LM

    from lm.model import new_lm

    torch.manual_seed(0)
    model = new_lm(TINY_LM, len(vocab), vocab.pad_id, vocab.bos_id, vocab.eos_id).eval()
    hw = 4 * vocab.image_depth
    prompts = [[vocab.bos_id, *vocab.encode_text("the letter a"), vocab.boi_id],
               [vocab.bos_id, vocab.boa_id, *vocab.audio_ids([1, 2]).tolist()]]
    for seed in range(3):
        new = generate_ids(model, vocab, prompts, stop_id=vocab.eos_id, max_new_tokens=30,
                           sampling=Sampling(temperature=1.0, seed=seed), image_tokens=hw)
        for prompt, tokens in zip(prompts, new, strict=True):
            _check_rules(prompt + tokens.tolist(), vocab, hw)
    # the level rows of the table: image level 2 allows exactly its 5 ids
    mask = ModalityMask(vocab, hw)
    ids = [vocab.bos_id, vocab.boi_id, vocab.image_offset, vocab.image_offset + 5]
    scores = mask(torch.tensor([ids]), torch.zeros(1, len(vocab)))
    allowed = (scores[0] == 0).nonzero().flatten().tolist()
    assert allowed == list(range(vocab.image_offset + 10, vocab.image_offset + 15))
    codes = maskgit_generate(model, vocab, prompts[:1], hw, steps=3,
                             sampling=Sampling(temperature=1.0))
    assert codes.shape == (1, hw) and int(codes.max()) < 5  # raw codes of each level


@pytest.fixture
def residual_bundle(tmp_path):
    speech = SpeechTokenizer(tiny_config(quantizer="rvq", rvq_depth=2))
    image = tiny_image_tokenizer(quantizer="rfsq", rvq_depth=2, fsq_levels=(3, 3))
    vocab = MultimodalVocab.build(train_bpe(TEXTS, 300), speech.config.codebook_size,
                                  image.config.codebook_size, 2, 2)
    return make_bundle(tmp_path / "bundle", speech, image, vocab=vocab)


@pytest.mark.parametrize("decoding", ["causal", "maskgit"])
def test_text_to_image_decodes_residual_grids(residual_bundle, decoding):
    pipe = TextToImage.from_pretrained(residual_bundle)
    out = pipe(["the letter a"], num_images=2, seed=0, temperature=1.0, decoding=decoding,
               steps=4)
    assert out.grids.shape == (2, 2, pipe.layout.grid, pipe.layout.grid)
    r = pipe.image_tokenizer.config.resolution
    assert out.images.shape == (2, 3, r, r)
    assert torch.allclose(out.images, pipe.image_tokenizer.decode(out.grids))


def test_speech_continuation_with_residual_codes(residual_bundle):
    pipe = SpeechContinuation.from_pretrained(residual_bundle)
    wav = torch.from_numpy(speechlike(1.0, seed=3))
    out = pipe(wav, 16000, prompt_seconds=0.5, max_seconds=0.3, seed=0)
    frames = len(out.units[0]) // 2
    assert len(out.units[0]) % 2 == 0 and frames <= 15
    assert len(out.prompt_units[0]) == 2 * 25  # 0.5 s at 50 Hz, both levels, no dedup
    assert out.waveforms[0].shape[-1] == (25 + frames) * 320


def test_pretokenize_stores_depth_first_codes(tmp_path):
    image = tiny_image_tokenizer(quantizer="rvq", rvq_depth=2, codebook_size=16)
    image.save_pretrained(tmp_path / "tok")
    write_captioned_images(tmp_path / "imgs", {"train": 3}, green=90, caption="colour")
    pretokenize("image", tmp_path / "imgs", tmp_path / "tok", tmp_path / "codes")
    rows = load_codes(tmp_path / "codes", "train")
    import json

    meta = json.loads((tmp_path / "codes" / "pretokenized.json").read_text())
    assert meta["code_depth"] == 2
    from PIL import Image

    from speechtok.image import ImageTokenizer

    tok = ImageTokenizer.from_pretrained(str(tmp_path / "tok"))
    files = sorted((tmp_path / "imgs" / "train").glob("*.png"))
    names = list(rows["name"])
    grid = tok.encode(Image.open(files[0]))[0]  # (2, h, w)
    stored = torch.tensor(rows[names.index(files[0].name)]["codes"])
    assert torch.equal(deinterleave(stored, 2).reshape(grid.shape), grid)
    assert np.prod(grid.shape) == len(stored)


def test_residual_codes_train_and_generate_end_to_end(tiny_tokenizer, audio_folder, tmp_path):
    """rvq speech and rfsq image codes → lm tokenize → lm train → both pipelines."""
    from dataclasses import replace

    from helpers import TINY_LM, lm_train_config

    from lm.train import train_lm

    SpeechTokenizer(tiny_config(quantizer="rvq", rvq_depth=2)).save_pretrained(tmp_path / "st")
    tiny_image_tokenizer(quantizer="rfsq", rvq_depth=2, fsq_levels=(3, 3)).save_pretrained(
        tmp_path / "it")
    write_captioned_images(tmp_path / "imgs", {"train": 6, "valid": 2}, green=90,
                           caption="colour number")
    pretokenize("speech", audio_folder, tmp_path / "st", tmp_path / "speech_codes")
    pretokenize("image", tmp_path / "imgs", tmp_path / "it", tmp_path / "image_codes")
    cfg = replace(lm_train_config(tmp_path, task_weights={"speech": 1.0, "caption_image": 1.0,
                                               "maskgit_image": 1.0}), block_size=128)
    train_lm(tmp_path / "bundle", TINY_LM, cfg)
    vocab = MultimodalVocab.from_pretrained(tmp_path / "bundle")
    assert (vocab.audio_depth, vocab.image_depth) == (2, 2)
    pipe = TextToImage.from_pretrained(tmp_path / "bundle")
    for decoding in ("causal", "maskgit"):
        out = pipe("colour number", decoding=decoding, steps=4, seed=0)
        assert out.grids.shape == (1, 2, pipe.layout.grid, pipe.layout.grid)
    speech = SpeechContinuation.from_pretrained(tmp_path / "bundle")
    out = speech(torch.from_numpy(speechlike(1.0, seed=1)), 16000, prompt_seconds=0.4,
                 max_seconds=0.2, seed=0)
    assert out.waveforms[0].shape[-1] % 320 == 0 and len(out.units[0]) % 2 == 0


# ---- a two-grid hierarchy (VQ-VAE-2 / HQ-VAE) ------------------------------------------

def test_two_grid_tokenizer_codes_coarse_then_fine():
    tok = tiny_image_tokenizer(hierarchy=2, quantizer="fsq", fsq_levels=(5, 5))
    assert tok.config.segments == [4, 16] and tok.config.tokens_per_image == 20
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    out = tok(x * 2 - 1)
    out.reconstruction.square().mean().backward()
    assert tok.hierarchy.top_encoder[0].weight.grad.abs().sum() > 0  # the coarse path learns
    tok.eval()
    codes = tok.encode(x.detach())
    assert codes.shape == (2, 20) and int(codes.max()) < 25
    assert torch.equal(tok(x.detach() * 2 - 1).quantizer.codes, codes)
    assert tok.decode(codes).shape == (2, 3, 16, 16)
    changed = codes.clone()
    changed[:, 0] = (changed[:, 0] + 1) % 25  # one coarse code changes a whole quadrant
    diff = (tok.decode(changed) - tok.decode(codes)).abs().sum(1)[0]
    assert diff[:8, :8].sum() > diff[8:, 8:].sum()
    with pytest.raises(ValueError, match="flat codes"):
        tok.decode(codes[:, :16])
    with pytest.raises(ValueError, match="hierarchy"):
        tiny_image_tokenizer(hierarchy=2, quantizer="rvq")


def test_hierarchy_vocab_levels_and_generation_rules():
    from helpers import TINY_LM

    from lm.model import new_lm

    v = MultimodalVocab.build(train_bpe(TEXTS, 300), 0, 6, image_segments=[4, 16])
    assert v.image_levels == 2 and v.image_size == 12
    codes = torch.arange(20) % 6
    ids = v.image_ids(codes)
    assert (ids[:4] - v.image_offset).lt(6).all() and (ids[4:] - v.image_offset).ge(6).all()
    assert torch.equal(v.codes_from_ids(ids), codes)
    with pytest.raises(ValueError, match="one image"):
        v.image_ids(codes[:10])
    with pytest.raises(ValueError, match="level-0 code where level 1 belongs"):
        v.codes_from_ids(torch.cat([ids[:4], ids[:16]]))
    torch.manual_seed(0)
    model = new_lm(TINY_LM, len(v), v.pad_id, v.bos_id, v.eos_id).eval()
    prompt = [v.bos_id, *v.encode_text("the letter a"), v.boi_id]
    for seed in range(3):
        new = generate_ids(model, v, [prompt], stop_id=v.eoi_id, max_new_tokens=21,
                           sampling=Sampling(temperature=1.0, seed=seed), image_tokens=20)[0]
        assert len(new) == 21 and new[-1] == v.eoi_id
        assert torch.equal(v.image_ids(v.codes_from_ids(new[:20])), new[:20])
    drawn = maskgit_generate(model, v, [prompt], 20, steps=4)
    assert torch.equal(v.codes_from_ids(v.image_ids(drawn[0])), drawn[0])


def test_two_grid_codes_train_and_generate_end_to_end(tiny_tokenizer, audio_folder, tmp_path):
    from dataclasses import replace

    from helpers import TINY_LM, lm_train_config

    from lm.train import train_lm

    tiny_tokenizer.save_pretrained(tmp_path / "st")
    tiny_image_tokenizer(hierarchy=2, quantizer="fsq", fsq_levels=(3, 3)).save_pretrained(
        tmp_path / "it")
    write_captioned_images(tmp_path / "imgs", {"train": 6, "valid": 2}, green=90,
                           caption="colour number")
    pretokenize("speech", audio_folder, tmp_path / "st", tmp_path / "speech_codes")
    pretokenize("image", tmp_path / "imgs", tmp_path / "it", tmp_path / "image_codes")
    rows = load_codes(tmp_path / "image_codes", "train")
    assert len(rows[0]["codes"]) == 20
    cfg = replace(lm_train_config(tmp_path, task_weights={"caption_image": 1.0,
                                                          "maskgit_image": 1.0}))
    train_lm(tmp_path / "bundle", TINY_LM, cfg)
    assert MultimodalVocab.from_pretrained(tmp_path / "bundle").image_segments == [4, 16]
    pipe = TextToImage.from_pretrained(tmp_path / "bundle")
    for decoding in ("causal", "maskgit"):
        out = pipe("colour number", num_images=2, decoding=decoding, steps=4, seed=0)
        assert out.grids.shape == (2, 20) and out.images.shape == (2, 3, 16, 16)
