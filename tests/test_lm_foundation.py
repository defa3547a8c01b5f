"""lm.vocab, lm.loss and lm.packing: one id space, the weighted loss, isolated packed samples."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lm.loss import IGNORE, modality_weighted_loss
from lm.packing import collate_blocks, pack, padding_share
from lm.vocab import AUDIO, IMAGE, TEXT, MultimodalVocab, train_bpe

TEXTS = ["DejaVu Sans Bold, the uppercase letter G", "Liberation Serif, the digit 7",
         "anna painted the green box in the garden", "twenty one twenty two"] * 20


@pytest.fixture(scope="module")
def vocab():
    return MultimodalVocab.build(train_bpe(TEXTS, vocab_size=300), audio_size=16, image_size=12)


def test_ranges_are_contiguous_and_arithmetic(vocab):
    assert vocab.audio_offset == vocab.layout["text_size"]
    assert vocab.image_offset == vocab.audio_offset + 16 and len(vocab) == vocab.image_offset + 12
    ids = vocab.audio_ids([0, 5, 15])
    assert ids.tolist() == [vocab.audio_offset, vocab.audio_offset + 5, vocab.audio_offset + 15]
    assert vocab.tokenizer.convert_ids_to_tokens(ids.tolist()) == ["<a_0>", "<a_5>", "<a_15>"]
    assert vocab.units_from_ids(ids).tolist() == [0, 5, 15]
    assert vocab.codes_from_ids(vocab.image_ids([3, 11])).tolist() == [3, 11]
    text = vocab.encode_text("the green box")
    mixed = torch.tensor([vocab.boi_id, *vocab.image_ids([1, 2]).tolist(), vocab.eoi_id, *text,
                          *vocab.audio_ids([4]).tolist()])
    assert vocab.modality(mixed).tolist() == [TEXT, IMAGE, IMAGE, TEXT] + [TEXT] * len(text) + \
        [AUDIO]
    with pytest.raises(ValueError, match="speech unit 16 is out of range"):
        vocab.audio_ids([3, 16])
    with pytest.raises(ValueError, match="image code -1"):
        vocab.image_ids([-1])


def test_saves_as_a_standard_hf_tokenizer(vocab, tmp_path):
    from transformers import AutoTokenizer

    vocab.save_pretrained(tmp_path / "tok")
    plain = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))  # no project code
    ids = [vocab.boa_id, *vocab.audio_ids([1, 2]).tolist(), vocab.eoa_id,
           *vocab.encode_text("the digit 7")]
    assert len(plain) == len(vocab)
    assert plain.decode(ids) == vocab.decode(ids)
    assert "<boa><a_1><a_2><eoa>" in plain.decode(ids).replace(" ", "")
    assert "the digit 7" in plain.decode(ids)
    again = MultimodalVocab.from_pretrained(tmp_path / "tok")
    assert again.layout == vocab.layout and again.eoi_id == vocab.eoi_id


def test_weighted_loss_matches_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 7)
    labels = torch.tensor([[2, 4, 6, 1, IGNORE]])
    modality = torch.tensor([[TEXT, IMAGE, IMAGE, AUDIO, TEXT]])
    loss, metrics = modality_weighted_loss(logits, labels, modality,
                                           {"text": 0.125, "image": 0.875, "audio": 0.5})

    def ce(t):
        return -F.log_softmax(logits[0, t], -1)[labels[0, t]]

    expected = 0.125 * ce(0) + 0.875 * (ce(1) + ce(2)) / 2 + 0.5 * ce(3)
    assert torch.allclose(loss, expected, atol=1e-6)
    assert metrics["tokens/image"] == 2 and metrics["tokens/text"] == 1
    assert metrics["bits/audio"] == pytest.approx(float(ce(3)) / math.log(2), rel=1e-5)


def test_merged_metrics_average_each_modality_over_all_its_tokens():
    from lm.loss import merge_metrics

    a = {"loss/image": 1.0, "tokens/image": 3.0, "loss/text": 4.0, "tokens/text": 1.0}
    b = {"loss/image": 3.0, "tokens/image": 1.0}  # no text in this micro-batch
    merged = merge_metrics([a, b])
    assert merged["loss/image"] == pytest.approx((3 * 1.0 + 1 * 3.0) / 4)  # not (1 + 3) / 2
    assert merged["tokens/image"] == 4 and merged["loss/text"] == 4.0
    assert merged["bits/image"] == pytest.approx(1.5 / math.log(2))
    assert "loss/audio" not in merged
    # `reduce` sums over processes: two identical processes give the same means, twice the tokens
    doubled = merge_metrics([a, b], lambda t: t * 2)
    assert doubled["loss/image"] == pytest.approx(1.5) and doubled["tokens/image"] == 8


def test_a_batch_without_targets_gives_a_zero_loss_with_a_graph():
    logits = torch.randn(1, 3, 7, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.full((1, 3), IGNORE)
    loss, metrics = modality_weighted_loss(logits, labels, torch.zeros(1, 3, dtype=torch.long),
                                           {"text": 1.0})
    assert loss.item() == 0.0 and loss.dtype == torch.float32 and metrics == {}
    loss.backward()  # it still joins the backward pass (DDP needs every process to)
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_pack_and_padding_share():
    samples = [torch.arange(n) for n in (5, 7, 6, 20)]
    blocks, cut = pack(samples, 12)
    assert [[len(s) for s in b] for b in blocks] == [[5, 7], [6], [12]] and cut == 1
    assert padding_share(blocks, 12) == pytest.approx(6 / 36)


def test_packed_sample_logits_equal_the_sample_alone():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg).eval()
    model.config._attn_implementation = "sdpa"
    a, b = torch.randint(1, 50, (5,)), torch.randint(1, 50, (7,))
    batch = collate_blocks([[a, b]], 16, pad_id=0)
    assert batch["labels"][0, :5].tolist() == a[1:].tolist() + [IGNORE]
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       attention_mask=batch["attention_mask"]).logits
        alone = model(input_ids=b[None]).logits
        leaky = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
    assert torch.isfinite(packed).all()
    assert (packed[0, 5:12] - alone[0]).abs().max() < 1e-5
    # position_ids alone let b attend to a under SDPA: the 4-D mask is what isolates it
    assert (leaky[0, 5:12] - alone[0]).abs().max() > 1e-3


def test_new_lm_round_trips_through_auto_class(vocab, tmp_path):
    from transformers import AutoModelForCausalLM

    from lm.model import LMConfig, new_lm

    model = new_lm(LMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                            intermediate_size=64), len(vocab), vocab.pad_id, vocab.bos_id,
                   vocab.eos_id).eval()
    model.save_pretrained(tmp_path / "lm")
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "lm")).eval()
    ids = torch.tensor([[vocab.boa_id, *vocab.audio_ids([1, 2, 3]).tolist()]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)


def test_extend_pretrained_mean_rows_and_frozen_text(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from lm.model import extend_lm

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2,
                                        num_key_value_heads=1, tie_word_embeddings=False))
    base.save_pretrained(tmp_path / "base")
    model, old = extend_lm(tmp_path / "base", 60, freeze_rows=40)
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert old == 40 and emb.shape[0] == 60 and head.shape[0] == 60
    assert torch.allclose(emb[:40], base.get_input_embeddings().weight)
    assert torch.allclose(emb[40:], base.get_input_embeddings().weight.mean(0).expand(20, -1))
    assert torch.allclose(head[40:], base.get_output_embeddings().weight.mean(0).expand(20, -1))
    before = emb.detach().clone(), head.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    ids = torch.tensor([[1, 45, 50, 3, 59]])
    model(ids, labels=ids).loss.backward()
    opt.step()
    assert torch.equal(emb[:40], before[0][:40]) and torch.equal(head[:40], before[1][:40])
    assert not torch.equal(emb[40:], before[0][40:])
    with pytest.raises(FileNotFoundError, match="local paths only"):
        extend_lm(tmp_path / "missing", 60)


def test_sample_formats_and_cm3_round_trip(vocab):
    import random

    from lm import formats

    units, grid = [3, 3, 3, 7, 7, 1], torch.tensor([[0, 1], [2, 11]])
    s = formats.speech_only(vocab, units)
    assert s == [vocab.bos_id, vocab.boa_id, *vocab.audio_ids([3, 7, 1]).tolist(), vocab.eoa_id,
                 vocab.eos_id]
    assert len(formats.speech_only(vocab, units, dedup=False)) == len(units) + 4
    t2i = formats.caption_to_image(vocab, "the digit 7", grid)
    text = vocab.encode_text("the digit 7")
    assert t2i[1:1 + len(text)] == text and t2i[1 + len(text)] == vocab.boi_id
    assert vocab.codes_from_ids(t2i[2 + len(text):-2]).tolist() == [0, 1, 2, 11]
    i2t = formats.image_to_caption(vocab, grid, "the digit 7")
    assert i2t[1] == vocab.boi_id and i2t[-1 - len(text):-1] == text
    asr = formats.speech_to_text(vocab, units, "twenty one")
    tts = formats.text_to_speech(vocab, "twenty one", units)
    assert sorted(asr) == sorted(tts)
    rng = random.Random(0)
    for sample in (s, t2i, i2t, asr, formats.text_only(vocab, "anna painted the box")):
        start, end = formats.random_span(len(sample), rng)
        masked = formats.causal_masked(vocab, sample, start, end)
        assert masked.count(vocab.mask_id) == 2 and len(masked) == len(sample) + 2
        assert masked[-1 - (end - start):-1] == sample[start:end]  # the span moved to the end
        assert formats.uncausal_masked(vocab, masked) == sample
    with pytest.raises(ValueError, match="span"):
        formats.causal_masked(vocab, s, 0, 2)  # would mask <bos>


def test_mixture_follows_weights_and_is_deterministic():
    from collections import Counter

    from lm.mixture import Mixture

    mix = Mixture({"speech": list(range(10)), "image": ["a", "b"], "text": ["t"]},
                  {"speech": 3.0, "image": 1.0, "text": 0.0}, seed=1)
    counts = Counter(name for step in range(200) for name, _ in mix.draw(step, 50))
    assert set(counts) == {"speech", "image"}  # weight 0 never drawn
    assert counts["speech"] / 10000 == pytest.approx(0.75, abs=0.02)
    assert mix.draw(7, 5) == mix.draw(7, 5) and mix.draw(7, 5) != mix.draw(8, 5)
    with pytest.raises(ValueError, match="unknown"):
        Mixture({"a": [1]}, {"b": 1.0})
    with pytest.raises(ValueError, match="no items"):
        Mixture({"a": []}, {"a": 1.0})


def test_packed_batches_from_codes(vocab):
    from datasets import Dataset

    from lm.data import PackedBatches, TaskSources
    from lm.loss import IGNORE
    from lm.vocab import AUDIO, IMAGE

    speech = Dataset.from_dict({"name": ["a", "b"], "text": ["twenty one", "twenty two"],
                                "units": [[1, 1, 2, 3], [4, 4, 4, 5, 6]]})
    images = Dataset.from_dict({"name": ["x", "y", "z"], "text": ["the digit 7"] * 3,
                                "codes": [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]})
    src = TaskSources(vocab, speech, images, caption_dropout=1.0)
    assert set(src.available()) == {"speech", "speech_text", "text_speech", "caption_image",
                                    "maskgit_image", "image_caption", "text"}
    # caption dropout 1.0: the caption is always the empty one
    assert src.sample("caption_image", 0, 0)[:2] == [vocab.bos_id, vocab.boi_id]
    batches = PackedBatches(src, {"speech": 1.0, "caption_image": 1.0}, block_size=32,
                            samples_per_step=6, seed=3)
    b = batches(5)
    assert torch.equal(b["input_ids"], batches(5)["input_ids"])  # deterministic by step
    real = b["labels"] != IGNORE
    assert set(b["modality"][real].tolist()) <= {TEXT, AUDIO, IMAGE}
    assert (b["modality"][real] == AUDIO).any() or (b["modality"][real] == IMAGE).any()
    assert b["attention_mask"].shape == (b["input_ids"].shape[0], 1, 32, 32)
    with pytest.raises(ValueError, match="no data for task"):
        PackedBatches(TaskSources(vocab, speech, None), {"caption_image": 1.0}, 32, 4)
    cm3 = TaskSources(vocab, speech, images, cm3_rate=1.0)
    assert cm3.sample("image_caption", 1, 0).count(vocab.mask_id) == 2


def test_alternative_captions(vocab):
    from datasets import Dataset

    from lm import formats
    from lm.data import TaskSources

    images = Dataset.from_dict({"name": ["x"], "text": ["Tinos, the digit 7"],
                                "alt_texts": [["the digit 7"]], "codes": [[0, 1, 2, 3]]})
    src = TaskSources(vocab, None, images, caption_dropout=0.0)
    full = formats.caption_to_image(vocab, "Tinos, the digit 7", [0, 1, 2, 3])
    short = formats.caption_to_image(vocab, "the digit 7", [0, 1, 2, 3])
    drawn = [src.sample("caption_image", 0, d) for d in range(40)]
    assert all(ids in (full, short) for ids in drawn)
    assert 10 < sum(ids == short for ids in drawn) < 30  # each caption about half the time


def test_counts_normalised_micro_batches_sum_to_the_whole_batch():
    """Gradient accumulation / data parallelism: parts normalised by the total token counts
    add up to the loss of the whole batch."""
    from lm.loss import token_counts

    torch.manual_seed(1)
    logits = torch.randn(4, 6, 9)
    labels = torch.randint(0, 9, (4, 6))
    labels[0, :2] = IGNORE
    modality = torch.randint(0, 3, (4, 6))
    w = {"text": 0.125, "image": 0.875, "audio": 1.0}
    whole, _ = modality_weighted_loss(logits, labels, modality, w)
    counts = token_counts(labels[:2], modality[:2]) + token_counts(labels[2:], modality[2:])
    parts = [modality_weighted_loss(logits[s], labels[s], modality[s], w, counts)[0]
             for s in (slice(0, 2), slice(2, 4))]
    assert torch.allclose(parts[0] + parts[1], whole, atol=1e-6)
    # without the shared counts, the mean of per-part means is a different number
    naive = sum(modality_weighted_loss(logits[s], labels[s], modality[s], w)[0]
                for s in (slice(0, 2), slice(2, 4))) / 2
    assert not torch.allclose(naive, whole, atol=1e-4)
