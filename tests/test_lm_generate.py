"""lm.generate and the pipelines on a tiny random bundle: the modality mask, guidance, seeds,
durations, the classifier score, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speechlike
from helpers import CAPTIONS, make_bundle, tiny_image_tokenizer

from lm.classifier_score import ImageClassifier, train_classifier
from lm.durations import expand_durations, mean_run_lengths
from lm.generate import (
    IMAGE_DONE,
    IN_AUDIO,
    IN_IMAGE,
    OUTSIDE,
    ClassifierFreeGuidance,
    ModalityMask,
    PairedSampler,
    Sampling,
    generate_ids,
)
from lm.pipelines import SpeechContinuation, TextToImage, save_generation_defaults
from lm.vocab import AUDIO, IMAGE, TEXT, MultimodalVocab


def assert_spans_follow_the_rules(ids: list[int], v: MultimodalVocab, hw: int) -> None:
    """A plain-Python reference of the rules, token by token."""
    span, count = None, 0
    for t in ids:
        kind = int(v.modality([t])[0])
        if span == "image":
            assert (kind == IMAGE) if count < hw else (t == v.eoi_id), (ids, t)
            count += 1
            span = None if t == v.eoi_id else span
        elif span == "audio":
            assert kind == AUDIO or t == v.eoa_id, (ids, t)
            span = None if t == v.eoa_id else span
        else:
            assert kind == TEXT, (ids, t)
            span, count = {v.boa_id: "audio", v.boi_id: "image"}.get(t), 0


SETTINGS = [Sampling(temperature=0), Sampling(temperature=1.0), Sampling(temperature=3.0),
            Sampling(temperature=1.5, top_k=5), Sampling(temperature=2.0, top_p=0.5)]


def test_states_follow_the_markers(lm):
    _, v = lm
    mask = ModalityMask(v, image_tokens=3)
    img = v.image_ids([0, 1, 2]).tolist()
    word = v.encode_text("the")[0]
    rows = [[v.bos_id, word, word, v.pad_id],
            [v.bos_id, v.boa_id, *v.audio_ids([1]).tolist()],
            [v.bos_id, v.boa_id, v.eoa_id, v.boi_id],
            [v.bos_id, v.boi_id, *img],
            [v.boi_id, *img, v.eoi_id]]
    width = max(map(len, rows))
    ids = torch.tensor([[v.pad_id] * (width - len(r)) + r for r in rows])  # left padded
    assert mask.states(ids).tolist() == [OUTSIDE, IN_AUDIO, IN_IMAGE, IMAGE_DONE, OUTSIDE]


def test_incremental_state_equals_the_full_computation(lm):
    _, v = lm
    mask = ModalityMask(v, image_tokens=3)
    g = torch.Generator().manual_seed(0)
    markers = torch.tensor([v.boa_id, v.eoa_id, v.boi_id, v.eoi_id])
    ids = torch.full((4, 1), v.bos_id)
    for _ in range(60):  # random ids, a third of them span markers
        new = torch.randint(0, len(v), (4, 1), generator=g)
        pick = torch.rand(4, 1, generator=g) < 0.3
        new[pick] = markers[torch.randint(0, 4, (int(pick.sum()),), generator=g)]
        ids = torch.cat([ids, new], 1)
        out = mask(ids, torch.zeros(4, len(v)))
        expected = mask.penalty(len(v), "cpu")[mask.states(ids)]
        assert torch.equal(out, expected)


@pytest.mark.parametrize("sampling", SETTINGS, ids=lambda s: f"T{s.temperature}k{s.top_k}"
                         f"p{s.top_p}")
def test_no_out_of_modality_token_is_ever_emitted(lm, sampling):
    """A random LM, unconstrained, emits every kind of token; masked, it never leaves the span."""
    model, v = lm
    hw = 6
    word = v.encode_text("the")[0]
    img = generate_ids(model, v, [[v.bos_id, word, v.boi_id], [v.bos_id, v.boi_id]],
                       stop_id=v.eoi_id, max_new_tokens=40, sampling=sampling, image_tokens=hw)
    for row in img:  # exactly h×w image codes, then <eoi>, though 40 tokens were allowed
        assert len(row) == hw + 1 and row[-1] == v.eoi_id
        assert (v.modality(row[:hw]) == IMAGE).all()
    audio = generate_ids(model, v, [[v.bos_id, v.boa_id, *v.audio_ids([3, 4]).tolist()]] * 3,
                         stop_id=v.eoa_id, max_new_tokens=30, sampling=sampling)
    for row in audio:
        assert ((v.modality(row) == AUDIO) | (row == v.eoa_id)).all()
    text = generate_ids(model, v, [[v.bos_id, word]] * 3, stop_id=v.eos_id, max_new_tokens=30,
                        sampling=sampling, image_tokens=hw)
    for row in text:  # free text may open spans, which must then follow the rules
        assert_spans_follow_the_rules([v.bos_id, word, *row.tolist()], v, hw)
    with torch.no_grad():  # unmasked, most of the mass after <boi> is NOT on image codes,
        probs = model(torch.tensor([[v.bos_id, v.boi_id]])).logits[0, -1].softmax(-1)
    assert probs[v.modality(torch.arange(len(v))) == IMAGE].sum() < 0.5  # so this test can fail


def test_guidance_formula_and_paired_draw():
    cond, uncond = torch.randn(3, 10), torch.randn(3, 10)
    scores = ClassifierFreeGuidance(2.5)(None, torch.cat([cond, uncond]))
    assert torch.allclose(scores[:3], uncond + 2.5 * (cond - uncond), atol=1e-6)
    assert torch.equal(scores[:3], scores[3:])
    assert torch.equal(ClassifierFreeGuidance(1.0)(None, torch.cat([cond, uncond]))[:3], cond)
    out = PairedSampler(Sampling(temperature=1.0).warpers(), True)(torch.zeros(6, 1).long(),
                                                                   scores)
    picked = out.argmax(-1)
    assert torch.equal(picked[:3], picked[3:]) and (out.isfinite().sum(-1) == 1).all()


@pytest.mark.parametrize("sampling", [Sampling(temperature=1.0, seed=3),
                                      Sampling(temperature=0.8, top_k=7, top_p=0.9, seed=4)])
def test_guidance_one_reproduces_plain_sampling_exactly(lm, sampling):
    """The batched cond/uncond path at s = 1 draws exactly what plain sampling draws."""
    model, v = lm
    prompts = [[v.bos_id, *v.encode_text("the letter a"), v.boi_id],
               [v.bos_id, *v.encode_text("the digit 7"), v.boi_id]]
    kw = dict(stop_id=v.eoi_id, max_new_tokens=13, sampling=sampling, image_tokens=12)
    plain = generate_ids(model, v, prompts, **kw)
    batched = generate_ids(model, v, prompts, uncond_prompts=[[v.bos_id, v.boi_id]] * 2,
                           batched_guidance_at_one=True, **kw)
    assert all(torch.equal(a, b) for a, b in zip(plain, batched, strict=True))
    guided = generate_ids(model, v, prompts, uncond_prompts=[[v.bos_id, v.boi_id]] * 2,
                          guidance_scale=4.0, **kw)
    assert any(not torch.equal(a, b) for a, b in zip(plain, guided, strict=True))


def test_text_to_image_seeds_shapes_and_defaults(bundle):
    pipe = TextToImage.from_pretrained(bundle)
    r = pipe.image_tokenizer.config.resolution
    out = pipe(["the letter a", "the digit 7"], num_images=3, seed=1, temperature=1.0,
               guidance_scale=2.0)
    g = pipe.layout.grid
    assert out.images.shape == (6, 3, r, r) and out.grids.shape == (6, g, g)
    assert out.captions == ["the letter a"] * 3 + ["the digit 7"] * 3
    assert 0 <= out.images.min() and out.images.max() <= 1
    again = pipe(["the letter a", "the digit 7"], num_images=3, seed=1, temperature=1.0,
                 guidance_scale=2.0)
    assert torch.equal(out.grids, again.grids)
    other = pipe(["the letter a", "the digit 7"], num_images=3, seed=2, temperature=1.0,
                 guidance_scale=2.0)
    assert not torch.equal(out.grids, other.grids)
    # batching in chunks gives the same images as one batch (one seeded stream)
    chunked = pipe(["the letter a", "the digit 7"], num_images=3, seed=1, temperature=0,
                   guidance_scale=2.0, batch_size=2)
    whole = pipe(["the letter a", "the digit 7"], num_images=3, seed=1, temperature=0,
                 guidance_scale=2.0)
    assert torch.equal(chunked.grids, whole.grids)
    save_generation_defaults(bundle, "image", {"guidance_scale": 1.0, "temperature": 0.0})
    assert TextToImage.from_pretrained(bundle)("the letter a").settings["guidance_scale"] == 1.0


def test_caption_errors(bundle, tmp_path):
    pipe = TextToImage.from_pretrained(bundle)
    with pytest.raises(ValueError, match="<boi>"):
        pipe("a caption with <boi> in it")
    with pytest.raises(ValueError, match="<i_3>"):
        pipe("draw <i_3>")
    # a tokenizer with an unknown-character token (not byte-level): é cannot be encoded
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CAPTIONS, trainers.BpeTrainer(special_tokens=["<unk>"]))
    text_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    other = make_bundle(tmp_path / "unk", None, tiny_image_tokenizer())
    MultimodalVocab.build(text_tok, 0, 16).save_pretrained(other)
    with pytest.raises(ValueError, match="'é'"):
        TextToImage.from_pretrained(other)("the letter é")
    with pytest.raises(FileNotFoundError, match="speech_tokenizer"):
        SpeechContinuation.from_pretrained(other)
    with pytest.raises(FileNotFoundError, match="not an LM bundle"):
        TextToImage.from_pretrained(tmp_path)


def test_speech_continuation(bundle):
    pipe = SpeechContinuation.from_pretrained(bundle)
    tok = pipe.speech_tokenizer
    wav = torch.from_numpy(speechlike(2.0, 22050, seed=1))  # resampled inside
    out = pipe(wav, 22050, prompt_seconds=0.5, max_seconds=0.4, seed=0, temperature=1.0)
    (units,), (dur,) = out.units, out.durations
    assert int(dur.sum()) <= int(0.4 * tok.frame_rate) and (dur >= 1).all()
    prompt_frames = int(torch.unique_consecutive(
        tok.encode(wav[None, : int(0.5 * 22050)], sample_rate=22050)[0],
        return_counts=True)[1].sum())
    assert out.waveforms[0].shape[-1] == (prompt_frames + int(dur.sum())) * tok.config.total_stride
    alone = pipe(wav, 22050, prompt_seconds=0.5, max_seconds=0.4, seed=0, temperature=1.0,
                 include_prompt=False)
    assert torch.equal(alone.units[0], units)
    assert alone.waveforms[0].shape[-1] == int(dur.sum()) * tok.config.total_stride
    two = pipe([wav, wav[:8000]], 22050, prompt_seconds=None, max_seconds=0.3, num_samples=2)
    assert len(two.waveforms) == 4
    with pytest.raises(ValueError, match="shorter than one frame"):
        pipe(wav[:100], 22050)


def test_min_seconds_holds_back_the_end_of_the_utterance(bundle):
    pipe = SpeechContinuation.from_pretrained(bundle)
    eoa = pipe.bundle.vocab.eoa_id

    def eager_to_end(module, inputs, output):  # an LM that always wants to end the utterance
        output[..., eoa] += 1e4
        return output

    pipe.bundle.model.lm_head.register_forward_hook(eager_to_end)
    wav = torch.from_numpy(speechlike(1.0, seed=2))
    assert len(pipe(wav, 16000, max_seconds=1.0, seed=0).units[0]) == 0
    held = pipe(wav, 16000, max_seconds=1.0, min_seconds=0.5, seed=0, temperature=1.0)
    (units,), (dur,) = held.units, held.durations
    frame_rate = pipe.speech_tokenizer.frame_rate
    # <eoa> came as soon as it was allowed: after about min_seconds of units, never before
    assert len(units) > 0 and 0.25 * frame_rate <= int(dur.sum()) <= 1.0 * frame_rate
    with pytest.raises(ValueError, match="min_seconds must be between 0 and max_seconds"):
        pipe(wav, 16000, max_seconds=1.0, min_seconds=2.0)


def test_durations_keep_the_speaking_rate():
    utts = [torch.tensor([0, 0, 0, 1, 2, 2, 0, 0, 0]), torch.tensor([1, 1, 3])]
    means = mean_run_lengths(utts, 5)
    assert means[:4].tolist() == [3.0, 1.5, 2.0, 1.0]
    assert means[4] == pytest.approx(12 / 6)  # unseen: the overall mean
    dur = expand_durations(torch.tensor([1] * 10), means)
    assert dur.sum() == 15 and set(dur.tolist()) == {1, 2}  # 1.5 each: alternating, not all 2


def test_classifier_learns_and_round_trips(tmp_path):
    """Bars: vertical vs horizontal vs none, at random places; held-out ones are recognised."""
    def bars(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.full((n, 3, 16, 16), 255, dtype=torch.uint8)
        labels = []
        for i, pos in zip(range(n), torch.randint(3, 13, (n,), generator=g), strict=True):
            kind = ["v", "h", "none"][i % 3]
            if kind == "v":
                x[i, :, :, pos - 1: pos + 1] = 0
            elif kind == "h":
                x[i, :, pos - 1: pos + 1, :] = 0
            labels.append(kind)
        return x, labels

    x, y = bars(150, 0)
    clf = train_classifier(x, y, epochs=3, batch_size=30, progress=False)
    xt, yt = bars(60, 1)
    assert clf.accuracy(xt, yt) >= 0.95
    clf.save_pretrained(tmp_path / "clf")
    back = ImageClassifier.from_pretrained(tmp_path / "clf")
    assert back.predict(xt) == clf.predict(xt)
    with pytest.raises(ValueError, match="never saw"):
        clf.accuracy(xt[:1], ["diagonal"])


def test_cli_generate(bundle, tmp_path, capsys):
    from lm.cli import main

    prompt = tmp_path / "prompt.wav"
    sf.write(prompt, np.stack([speechlike(1.0, seed=2)] * 2, 1), 16000)  # stereo
    out_wav = tmp_path / "out.wav"
    assert main(["generate", "speech", "--model", str(bundle), "--prompt", str(prompt), "--out",
          str(out_wav), "--prompt-seconds", "0.5", "--max-seconds", "0.3", "--seed", "0"]) == 0
    wav, sr = sf.read(out_wav)
    assert sr == 16000 and wav.ndim == 1 and len(wav) > 0.5 * 16000 * 0.9
    out_png = tmp_path / "grid.png"
    assert main(["generate", "image", "--model", str(bundle), "--caption", "the letter a",
          "--caption", "the digit 7", "--out", str(out_png), "--num", "3", "--seed", "0"]) == 0
    from PIL import Image

    assert Image.open(out_png).size[1] > Image.open(out_png).size[0] / 3  # 2 rows of 3
    assert main(["generate", "image", "--model", str(bundle), "--caption", "the letter a", "--out",
          str(tmp_path / "each.png"), "--num", "2", "--separate"]) == 0
    assert (tmp_path / "each_0.png").exists() and (tmp_path / "each_1.png").exists()
    # one image is the image itself, at the tokenizer's resolution, the same pixels as the
    # pipeline's; --grid frames it anyway
    from lm.pipelines import TextToImage
    from speechtok.image.io import to_pil

    one, framed = tmp_path / "one.png", tmp_path / "framed.png"
    for path, extra in ((one, []), (framed, ["--grid"])):
        assert main(["generate", "image", "--model", str(bundle), "--caption", "the letter a",
                     "--out", str(path), "--num", "1", "--seed", "0", *extra]) == 0
    res = json.loads((bundle / "image_tokenizer" / "config.json").read_text())["resolution"]
    assert Image.open(one).size == (res, res) and Image.open(framed).size[0] > res
    alone = TextToImage.from_pretrained(bundle)(["the letter a"], seed=0).images[0]
    assert np.array_equal(np.asarray(Image.open(one)), np.asarray(to_pil(alone)))
    missing_prompt = ["generate", "speech", "--model", str(bundle), "--prompt",
                      str(tmp_path / "nope.wav"), "--out", str(out_wav)]
    no_bundle = ["generate", "image", "--model", str(tmp_path / "nobundle"), "--caption", "x",
                 "--out", str(out_png)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    corrupt = ["generate", "speech", "--model", str(bundle), "--prompt", str(bad), "--out",
               str(out_wav)]
    for argv, message in [(missing_prompt, "nope.wav"), (no_bundle, "nobundle"),
                          (corrupt, "bad.wav")]:
        capsys.readouterr()
        assert main(argv) == 2
        assert message in capsys.readouterr().err


def test_speech_unit_nll_scores_unit_targets_only(lm):
    from lm.evaluate import speech_unit_nll

    model, v = lm
    utt = torch.tensor([1, 1, 2, 3, 3])  # dedups to 1 2 3: three unit targets
    ids = torch.tensor([[v.bos_id, v.boa_id, *v.audio_ids([1, 2, 3]).tolist(), v.eoa_id,
                         v.eos_id]])
    with torch.no_grad():
        logp = model(ids).logits[0].log_softmax(-1)
    by_hand = -sum(float(logp[p - 1, ids[0, p]]) for p in (2, 3, 4)) / 3
    alone = speech_unit_nll(model, v, [utt])
    assert alone["units"] == 3 and alone["nll_per_unit"] == pytest.approx(by_hand, abs=1e-4)
    other = torch.tensor([5, 6, 7, 8, 9, 10, 11])
    both = speech_unit_nll(model, v, [utt, other])  # padded together
    expected = (3 * by_hand + 7 * speech_unit_nll(model, v, [other])["nll_per_unit"]) / 10
    assert both["nll_per_unit"] == pytest.approx(expected, abs=1e-3)
