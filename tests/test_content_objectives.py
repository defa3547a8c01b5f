"""Content objectives of the speech tokenizer (phone classification, CTC, channel consistency),
the speaker probe: labels made right, terms computed right, training that resumes exactly and
saves a tokenizer without the heads, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from conftest import TINY, speechlike
from safetensors.torch import load_file

from speechtok.quantization.residual import ResidualVQ
from speechtok.quantization.vq import VectorQuantizer
from speechtok.speech import SpeechTokenizer, SpeechTokenizerConfig
from speechtok.speech.content import (
    CHARACTERS,
    IGNORE,
    ContentHeads,
    ContentLabels,
    char_ids,
    crop_phone_labels,
    phone_inventory,
)
from speechtok.speech.content_training import retime_labels
from speechtok.speech.data import open_eval_source, open_splits
from speechtok.speech.speaker_probe import linear_probe_accuracy, speaker_probe
from speechtok.speech.train import SpeechTrainConfig, train_speech

PHONES = [["pau", 0.0, 0.1], ["b", 0.1, 0.3], ["aa", 0.3, 0.5], ["pau", 0.5, 0.6]]


def labelled_folder(root, n=8, voices=("v1", "v2"), phones=True, text=True):
    """Clips of 0.6 s with a made-up alignment, a text and a voice each."""
    root.mkdir(parents=True)
    rows = []
    for i in range(n):
        sf.write(root / f"{i}.wav", speechlike(0.6, seed=i), 16000)
        row = {"file_name": f"{i}.wav", "voice": voices[i % len(voices)], "duration": 0.6}
        if phones:
            row["phones"] = PHONES
        if text:
            row["text"] = "Press 1." if i % 2 else "bob"
        rows.append(row)
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_crop_labels_follow_the_alignment():
    index = {"pau": 0, "b": 1, "aa": 2}
    # 50 Hz frames of a crop starting 0.05 s in: centres 0.06, 0.08, ... 0.64
    got = crop_phone_labels(PHONES, 0.05, 30, 50.0, index).tolist()
    centres = 0.05 + (np.arange(30) + 0.5) / 50
    want = [0 if c < 0.1 else 1 if c < 0.3 else 2 if c < 0.5 else 0 if c < 0.6 else IGNORE
            for c in centres]
    assert got == want
    # a clip zero-padded 0.1 s into its crop: the padding has no label
    padded = crop_phone_labels(PHONES, -0.1, 10, 50.0, index).tolist()
    assert padded[:5] == [IGNORE] * 5 and padded[5:] == [0] * 5
    # an unknown phone, no alignment, a duration shorter than the alignment
    assert crop_phone_labels(PHONES, 0.0, 30, 50.0, {"b": 0}).tolist().count(0) == 10
    assert (crop_phone_labels(None, 0.0, 5, 50.0, index) == IGNORE).all()
    assert (crop_phone_labels(PHONES, 0.0, 30, 50.0, index, duration_s=0.2)[10:] == IGNORE).all()


def test_characters_are_normalised_text():
    ids = char_ids("Press 1.")
    assert "".join(CHARACTERS[i - 1] for i in ids) == "press one"
    assert min(ids) >= 1  # 0 is the CTC blank
    assert char_ids("") == [] and char_ids("Tom's!") == [CHARACTERS.index(c) + 1
                                                          for c in "tom's"]


def test_labelled_batches_are_the_plain_batches_plus_labels(tmp_path):
    train, _ = open_splits(labelled_folder(tmp_path / "d"), 16000, seed=0)
    labels = ContentLabels({p: i for i, p in enumerate(phone_inventory(train.items))}, 16000,
                           320)
    plain = train.batch(3, 4, 16000, seed=0)
    batch = train.labelled_batch(3, 4, 16000, seed=0, labels=labels)
    assert torch.equal(plain, batch["wav"])  # the same crops: labels add nothing else
    assert batch["phones"].shape == (4, 50)
    # each 0.6 s clip padded into a 1 s crop: its 30 labelled frames are where its samples are
    for wav, phones in zip(batch["wav"], batch["phones"], strict=True):
        nonzero = (wav.reshape(50, 320).abs().sum(-1) > 0).nonzero().flatten()
        labelled = (phones != IGNORE).nonzero().flatten()
        assert len(labelled) == 30 and abs(int(labelled[0]) - int(nonzero[0])) <= 1


def test_utterance_batches_hold_whole_utterances_and_their_text(tmp_path):
    train, _ = open_splits(labelled_folder(tmp_path / "d"), 16000, seed=0)
    labels = ContentLabels({"pau": 0, "b": 1, "aa": 2}, 16000, 320)
    b = train.utterance_batch(0, 3, 16000 * 2, seed=0, process_index=0, labels=labels)
    assert b["wav"].shape == (3, 9600) and b["frames"].tolist() == [30] * 3
    for targets, n in zip(b["targets"], b["target_lengths"], strict=True):
        text = "".join(CHARACTERS[i - 1] for i in targets[:n])
        assert text in ("press one", "bob")
    cropped = train.utterance_batch(0, 3, 3200, seed=0, process_index=0, labels=labels)
    assert cropped["wav"].shape == (3, 3200) and cropped["target_lengths"].tolist() == [0] * 3


def test_heads_compute_the_documented_terms():
    torch.manual_seed(0)
    heads = ContentHeads(8, num_phones=3, ctc=True)
    q = torch.randn(2, 20, 8, requires_grad=True)
    phones = torch.randint(3, (2, 20))
    phones[0, :5] = IGNORE
    terms = heads(q, {"phones": phones})
    logits = heads.phone(q)
    keep = phones != IGNORE
    assert torch.allclose(terms["phone"], F.cross_entropy(logits[keep], phones[keep]))
    assert "ctc" not in terms and terms["unused"].item() == 0  # no targets on a crop batch
    terms["phone"].add(terms["unused"]).backward()
    assert all(p.grad is not None for p in heads.parameters())  # ... yet every head took part
    targets = torch.tensor([[3, 4, 5], [6, 0, 0]])
    lengths = torch.tensor([3, 0])  # the second row has no text: left out
    terms = heads(q, {"frames": torch.tensor([20, 12]), "targets": targets,
                      "target_lengths": lengths})
    log_probs = heads.ctc_out(heads.ctc_rnn(q)[0]).log_softmax(-1)
    want = F.ctc_loss(log_probs[:1].transpose(0, 1), targets[:1], torch.tensor([20]),
                      torch.tensor([3]), reduction="sum") / 3
    assert torch.allclose(terms["ctc"], want, atol=1e-5)


def test_commitment_to_given_codes():
    vq = VectorQuantizer(8, 16, codebook_dim=4, l2_normalize=True)
    x, codes = torch.randn(2, 5, 8), torch.randint(16, (2, 5))
    z = F.normalize(vq.in_proj(x), dim=-1)
    want = (z - vq.codebook[codes]).pow(2).sum(-1).mean()
    assert torch.allclose(vq.commitment_to(x, codes), want)
    assert torch.allclose(vq.commitment_to(x, vq.encode(x)),
                          (z - vq.codebook[vq.encode(x)]).pow(2).sum(-1).mean())
    rvq = ResidualVQ(2, 8, 16, codebook_dim=4)
    assert torch.allclose(rvq.commitment_to(x, codes),
                          rvq.stages[0].commitment_to(rvq.in_proj(x), codes))


def test_retimed_labels_follow_a_speed_change():
    labels = {"phones": torch.arange(10)[None], "frames": torch.tensor([10])}
    fast = retime_labels(labels, 2.0, 5)
    assert fast["phones"].tolist() == [[0, 2, 4, 6, 8]] and fast["frames"].tolist() == [5]


def _train(data, out, steps=4, **over):
    cfg = dict(steps=steps, batch_size=2, segment_seconds=0.4, eval_max_items=2, eval_every=4,
               save_every=2, log_every=1, warmup_steps=1, seed=0, phone_weight=1.0, ctc_weight=0.5,
               ctc_every=2, ctc_batch_size=2, consistency_weight=1.0, noise_prob=0.5)
    return train_speech(data, out, SpeechTokenizerConfig(**TINY),
                        SpeechTrainConfig(**{**cfg, **over}), resume=True)


def test_training_with_every_objective_resumes_exactly_and_saves_no_head(tmp_path):
    data = labelled_folder(tmp_path / "d")
    _train(data, tmp_path / "full")
    _train(data, tmp_path / "split", stop_after_steps=2)
    _train(data, tmp_path / "split")
    for name in ("model.safetensors", "checkpoints/last/content_heads.safetensors"):
        a, b = load_file(tmp_path / "full" / name), load_file(tmp_path / "split" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    curve = json.loads((tmp_path / "full" / "train_curve.json").read_text())  # every step
    assert all({"train/phone", "train/consistency", "train/agreement"} <= set(h) for h in curve)
    assert ["train/ctc" in h for h in curve] == [True, False, True, False]  # ctc_every 2
    assert not any("train/unused" in h for h in curve)
    # the saved tokenizer is the same kind of folder as one trained without objectives
    plain = SpeechTokenizer(SpeechTokenizerConfig(**TINY)).state_dict()
    assert set(load_file(tmp_path / "full" / "model.safetensors")) == set(plain)
    tok = SpeechTokenizer.from_pretrained(str(tmp_path / "full")).eval()
    assert tok.encode(torch.from_numpy(speechlike(0.5))).shape == (1, 25)
    # fine-tuning a saved tokenizer with a content objective
    _train(data, tmp_path / "tuned", steps=2, init_from=str(tmp_path / "full"),
           consistency_weight=0.0)
    assert (tmp_path / "tuned" / "model.safetensors").exists()


def test_phone_supervision_learns(tmp_path):
    """The phone term falls when the head and the tokenizer learn, and not at lr 0: clips of
    silence then sound, aligned as "pau" then "aa"."""
    data = tmp_path / "d"
    data.mkdir()
    rows = []
    for i in range(6):
        sf.write(data / f"{i}.wav", np.concatenate([np.zeros(4800, np.float32),
                                                    speechlike(0.3, seed=i)]), 16000)
        rows.append({"file_name": f"{i}.wav", "phones": [["pau", 0, 0.3], ["aa", 0.3, 0.6]]})
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    falls = {}
    for lr in (3e-3, 0.0):
        out = tmp_path / f"lr{lr}"
        _train(data, out, steps=60, lr=lr, ctc_weight=0.0, consistency_weight=0.0,
               eval_every=60, save_every=60, log_every=20)
        curve = json.loads((out / "train_curve.json").read_text())
        falls[lr] = curve[0]["train/phone"] - curve[-1]["train/phone"]
    assert falls[3e-3] > 0.2 and abs(falls[0.0]) < 0.1, falls  # measured 0.35 and 0.004


def test_objectives_follow_the_labels_the_data_has(tmp_path, capsys):
    """Phone classification where there are alignments, CTC where there is text, none where
    there is neither (with a note); a quantizer the consistency term cannot use is an error."""
    bare = labelled_folder(tmp_path / "bare", phones=False, text=False)
    _train(bare, tmp_path / "a", consistency_weight=0.0)
    out = capsys.readouterr().out
    assert "no training item has 'phones'" in out and "no training item has a 'text'" in out
    assert "content objectives" not in out
    assert not (tmp_path / "a" / "checkpoints" / "last" / "content_heads.safetensors").exists()
    texts = labelled_folder(tmp_path / "texts", phones=False)
    _train(texts, tmp_path / "b", consistency_weight=0.0)
    out = capsys.readouterr().out
    assert "content objectives: ctc ×0.5" in out and "the phone objective is off" in out
    curve = json.loads((tmp_path / "b" / "train_curve.json").read_text())
    assert "train/ctc" in curve[0] and "train/phone" not in curve[0]
    with pytest.raises(ValueError, match="codebook quantizer"):
        train_speech(bare, tmp_path / "c", SpeechTokenizerConfig(**{**TINY, "quantizer": "fsq"}),
                     SpeechTrainConfig(steps=1, consistency_weight=1.0))
    with pytest.raises(ValueError, match="phone_weight must be ≥ 0"):
        SpeechTrainConfig(phone_weight=-1)


def test_linear_probe_tells_voices_apart_only_when_it_can():
    g = torch.Generator().manual_seed(0)
    voices = ["a", "b", "c"] * 20
    centres = torch.randn(3, 6, generator=g) * 3
    x = torch.stack([centres["abc".index(v)] for v in voices]) + torch.randn(60, 6, generator=g)
    assert linear_probe_accuracy(x, voices) > 0.9
    noise = torch.randn(60, 6, generator=g)
    assert linear_probe_accuracy(noise, voices) < 0.6  # chance is 1/3


def test_speaker_probe_runs_on_a_tokenizer(tmp_path, tiny_tokenizer):
    folder = open_eval_source(labelled_folder(tmp_path / "d", n=10), 16000)
    result = speaker_probe(tiny_tokenizer, folder)
    assert result["speaker_probe_voices"] == 2 and result["speaker_probe_utterances"] == 10
    assert result["speaker_probe_chance"] == 0.5
    assert 0 <= result["speaker_probe_histogram"] <= 1
