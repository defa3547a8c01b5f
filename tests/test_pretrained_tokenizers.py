"""Pretrained tokenizers of transformers (tiny random models built here, saved with
save_pretrained: no download) through `lm tokenize` → `lm train` → generation → `lm serve`'s
functions, and the tokenizer interface they share with ours."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speechlike, write_captioned_images
from helpers import TINY_LM
from hf_tiny import IMAGE_VQS, SPEECH_CODECS, save_tiny, save_tiny_multimodal

from lm import formats
from lm.cli import main as lm_main
from lm.pipelines import SpeechContinuation, TextToImage
from lm.serve.capabilities import Capabilities
from lm.train import LMTrainConfig, train_lm
from lm.vocab import MultimodalVocab
from speechtok.cli import main as speechtok_main
from speechtok.tokenizer import CodeLayout, load_tokenizer


def _train(tmp_path, speech_codes=None, image_codes=None, tasks=None):
    cfg = LMTrainConfig(speech_codes=speech_codes, image_codes=image_codes,
                        text_vocab_size=280, block_size=256, samples_per_step=4, steps=2,
                        eval_every=2, save_every=2, warmup_steps=1, eval_batches=1,
                        task_weights=tasks)
    # 512 positions: a 16 × 16 grid and its caption fit
    train_lm(tmp_path / "bundle", replace(TINY_LM, max_positions=512), cfg)
    return tmp_path / "bundle"


def _wav_bytes(seconds: float, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speechlike(seconds, sr, seed=3), sr, format="WAV")
    return buf.getvalue()


@pytest.mark.parametrize("family", SPEECH_CODECS)
def test_speech_codec_end_to_end(family, audio_folder, tmp_path):
    folder = save_tiny(family, tmp_path / family)
    codes = tmp_path / "codes"
    depth = 1 if family == "xcodec2" else 2  # X-codec 2 has one (FSQ) codebook
    assert lm_main(["tokenize", "--tokenizer", f"hf:{folder}", "--num-codebooks", str(depth),
                    "--data", str(audio_folder), "--out", str(codes)]) == 0
    meta = json.loads((codes / "pretokenized.json").read_text())
    size = 64 if family != "xcodec2" else 4 ** 3
    assert (meta["kind"], meta["code_depth"], meta["codebook_size"]) == ("speech", depth, size)
    tok = load_tokenizer(meta["tokenizer"])  # the pointer folder beside the codes
    assert tok.source == str(folder.resolve()) and tok.layout.depth == depth

    bundle = _train(tmp_path, speech_codes=str(codes), tasks={"speech": 1.0})
    vocab = MultimodalVocab.from_pretrained(bundle)
    assert vocab.audio_depth == depth and not vocab.audio_dedup  # codec frames: every one kept
    repeated = formats.speech_only(vocab, torch.tensor([[3, 3, 3], [1, 1, 1]][:depth]))
    assert len(repeated) == 4 + 3 * depth
    card = (bundle / "README.md").read_text()
    assert f"pretrained `{folder.resolve()}`" in card and family in card

    pipe = SpeechContinuation.from_pretrained(bundle, device="cpu")
    rate = tok.layout.sample_rate
    out = pipe(torch.from_numpy(speechlike(1.0, rate, seed=1)), rate, prompt_seconds=0.5,
               max_seconds=0.3, seed=0)
    hop = round(rate / tok.layout.frame_rate)
    assert out.sample_rate == rate and out.waveforms[0].shape[-1] % hop == 0
    assert len(out.units[0]) % depth == 0  # whole frames

    app = Capabilities(bundle, device="cpu")
    assert app.info()["speech"] and not app.info()["image"]
    result = app.speech_tokenizer(_wav_bytes(0.6, rate))
    assert result["depth"] == depth and list(result["resynthesis"]) == ["decoder"]
    continued = app.continue_speech(_wav_bytes(0.6, rate), prompt_seconds=0.5, max_seconds=0.3)
    assert continued["prompt_s"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("family", IMAGE_VQS)
def test_image_vq_end_to_end(family, tmp_path):
    folder = save_tiny(family, tmp_path / family)
    write_captioned_images(tmp_path / "imgs", {"train": 4, "valid": 2}, size=(40, 40),
                           green=90, caption="colour number")
    codes = tmp_path / "codes"
    assert lm_main(["tokenize", "--tokenizer", f"hf:{folder}", "--resolution", "32",
                    "--data", str(tmp_path / "imgs"), "--out", str(codes)]) == 0
    meta = json.loads((codes / "pretokenized.json").read_text())
    assert (meta["kind"], meta["grid_size"], meta["codebook_size"]) == ("image", 16, 64)

    bundle = _train(tmp_path, image_codes=str(codes), tasks={"caption_image": 1.0})
    if family == "chameleon":  # transformers has Chameleon's VQ encoder only
        with pytest.raises(ValueError, match="cannot draw images"):
            TextToImage.from_pretrained(bundle, device="cpu")
        assert "cannot draw images" in Capabilities(bundle, device="cpu").missing["image"]
        return
    pipe = TextToImage.from_pretrained(bundle, device="cpu")
    out = pipe("colour number 1", num_images=2, seed=0)
    assert out.grids.shape == (2, 16, 16) and out.images.shape == (2, 3, 32, 32)
    assert 0 <= float(out.images.min()) and float(out.images.max()) <= 1
    app = Capabilities(bundle, device="cpu")
    assert app.text_to_image("colour number 2", num_images=1)["width"] == 32


@pytest.mark.parametrize("name", ["chameleon", "janus"])
def test_the_image_vq_inside_a_multimodal_checkpoint(name, tmp_path):
    """hf:facebook/chameleon-7b style: only the VQ's tensors are read, and they encode as the
    full model's own VQ does."""
    import transformers

    folder = save_tiny_multimodal(name, tmp_path / name)
    tok = load_tokenizer(f"hf:{folder}", resolution=32)
    assert tok.model_type == f"{name}_vqgan" and tok.layout.grid == 16
    full = getattr(transformers, f"{name.capitalize()}ForConditionalGeneration"
                   ).from_pretrained(folder).eval()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = full.model.vqmodel.encode(images * 2 - 1).image_tokens.view(2, 16, 16)
    assert torch.equal(tok.encode(images), expected)


def test_hf_options_are_checked(tmp_path):
    folder = save_tiny("dac", tmp_path / "dac")
    with pytest.raises(ValueError, match="between 1 and 4"):
        load_tokenizer(f"hf:{folder}", num_codebooks=5)
    with pytest.raises(ValueError, match="no config.json"):
        load_tokenizer(f"hf:{tmp_path / 'missing'}")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ValueError, match="'llama' is not a tokenizer"):
        load_tokenizer(f"hf:{tmp_path / 'other'}")
    with pytest.raises(ValueError, match="apply to hf: tokenizers only"):
        load_tokenizer(tmp_path / "other", num_codebooks=2)


def test_speechtok_encode_decode_with_a_codec(tmp_path, audio_folder):
    folder = save_tiny("encodec", tmp_path / "encodec")
    wav = sorted(audio_folder.glob("*.wav"))[0]
    units = tmp_path / "codes.jsonl"
    assert speechtok_main(["encode", "--tokenizer", f"hf:{folder}", "--num-codebooks", "2",
                           str(wav), "--out", str(units)]) == 0
    row = json.loads(units.read_text())
    assert np.array(row["units"]).shape[0] == 2  # (codebooks, frames)
    out = tmp_path / "back.wav"
    assert speechtok_main(["decode", "--tokenizer", f"hf:{folder}", "--num-codebooks", "2",
                           str(units), "--out", str(out)]) == 0
    audio, sr = sf.read(out)
    assert sr == 24000 and len(audio) == np.array(row["units"]).shape[1] * 320


@pytest.mark.parametrize("depth", [1, 3])
def test_code_layout_flatten_round_trips(depth):
    speech = CodeLayout("speech", 16, depth, sample_rate=16000, frame_rate=50)
    codes = torch.randint(0, 16, (depth, 7) if depth > 1 else (7,))
    flat = speech.flatten(codes)
    assert flat.shape == (7 * depth,) and torch.equal(speech.unflatten(flat), codes)
    if depth > 1:  # depth-first: the codes of frame 0, then frame 1, ...
        assert torch.equal(flat[:depth], codes[:, 0])
    image = CodeLayout("image", 16, depth, resolution=32, grid=4)
    grid = torch.randint(0, 16, (depth, 4, 4) if depth > 1 else (4, 4))
    assert torch.equal(image.unflatten(image.flatten(grid)), grid)
    assert speech.deduplicated == (depth == 1) and speech.tokens_per_second == 50 * depth
    assert not CodeLayout("speech", 16, 1, sample_rate=16000, frame_rate=50,
                          deduplicate=False).deduplicated


def test_codes_of_other_options_are_not_mixed_into_a_finished_out(tmp_path, audio_folder):
    folder = save_tiny("dac", tmp_path / "dac")
    codes = tmp_path / "codes"
    base = ["tokenize", "--tokenizer", f"hf:{folder}", "--data", str(audio_folder), "--out",
            str(codes)]
    assert lm_main([*base, "--num-codebooks", "2"]) == 0
    assert lm_main([*base, "--num-codebooks", "3"]) == 2  # a finished shard of 2 codebooks
    assert json.loads((codes / "pretokenized.json").read_text())["code_depth"] == 2


def test_a_codec_trains_no_vocoder_and_decodes_batches_by_their_lengths(tmp_path, audio_folder):
    from speechtok.cli import main as tok_main

    folder = save_tiny("xcodec2", tmp_path / "x2")
    assert tok_main(["train", "vocoder", "--tokenizer", f"hf:{folder}", "--data",
                     str(audio_folder), "--steps", "1"]) == 2
    tok = load_tokenizer(f"hf:{folder}")
    codes = torch.tensor([[5, 6, 7], [8, 9, 10]])
    wav = tok.decode(codes, durations=torch.tensor([[1, 1, 1], [2, 2, 2]]))
    assert wav.shape == (2, 6 * 320) and float(wav[0, 3 * 320:].abs().max()) == 0.0
