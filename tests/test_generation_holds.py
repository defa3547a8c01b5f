"""Issue 20's measuring tools: caption wordings (seen, held out, without a face), the unigram
baseline of the unit LM, the counting prompts and their scoring, the seed-spread summary."""

from __future__ import annotations

import json
import math
import random
import re
import shutil

import pytest
import torch

from lm.data import corpus_texts
from lm.evaluate import unigram_unit_nll
from recipes.builtin import captions, counting
from recipes.builtin.seed_spread import summarise
from recipes.builtin.speech_texts import counting_sequences

HAVE_FLITE = shutil.which("flite") is not None and shutil.which("t2p") is not None


def _template_regex(template: str) -> re.Pattern:
    """A template as a regex over a caption: {what} and {face} match anything."""
    parts = re.split(r"(\{what\}|\{face\})", template)
    return re.compile("^" + "".join(".+" if p in ("{what}", "{face}") else re.escape(p)
                                     for p in parts) + "$", re.IGNORECASE)


def test_training_wordings_are_distinct_reproducible_and_never_held_out():
    a = captions.training_wordings("G", "DejaVu Sans Bold", 8, "dejavu_uG.png")
    assert a == captions.training_wordings("G", "DejaVu Sans Bold", 8, "dejavu_uG.png")
    assert len(a) == len(set(a)) == 8
    assert captions.canonical_caption("G", "DejaVu Sans Bold") not in a
    assert a != captions.training_wordings("G", "DejaVu Sans Bold", 8, "other.png")
    # over many images every training template shows up, no held-out one ever does
    seen = [w for i in range(300) for w in captions.training_wordings("7", "Inter", 8, str(i))]
    held = [_template_regex(t) for t in captions.HELDOUT_WITH_FACE
            + captions.NEW_WORDS_WITH_FACE]
    assert not [w for w in seen if any(r.match(w) for r in held)]
    for template in captions.TRAINING_TEMPLATES:
        r = _template_regex(template)
        assert any(r.match(w) for w in seen), template
    assert {w for w in seen if w.isupper()} and {w for w in seen if w.islower()}


@pytest.mark.parametrize("ch", ["G", "g", "7"])
def test_every_wording_keeps_the_request(ch):
    """Whatever the template, synonym and case, the caption names the character and (for a
    letter) its case in words, and the face iff the template has one."""
    kind = captions.kind_of(ch)
    case_words = {"uppercase": ("uppercase", "capital", "upper case"),
                  "lowercase": ("lowercase", "small", "lower case"), "digit": ("",)}[kind]
    for template in (captions.TRAINING_TEMPLATES + captions.HELDOUT_WITH_FACE
                     + captions.NEW_WORDS_WITH_FACE):
        for synonym in range(len(captions.CHAR_NAMES[kind])):
            for case in captions.CASES:
                text = captions.caption(template, ch, "Caladea Bold", synonym, case)
                low = text.lower()
                assert re.search(rf"\b{ch}\b", text), text  # the character keeps its case
                assert any(w in low for w in case_words), text
                assert ("caladea bold" in low) == ("{face}" in template), text


def test_family_captions_one_per_glyph_and_by_family():
    chars, faces = list("Ag7") * 4, ["Caladea", "URW Gothic Demi", "Caladea Bold"] * 4
    canon = captions.family_captions("canonical", chars, faces)
    assert canon[0] == "Caladea, the uppercase letter A"
    no_face = captions.family_captions("no_face", chars, faces)
    assert len(no_face) == 12 and not any("caladea" in c.lower() for c in no_face)
    held = captions.family_captions("heldout", chars, faces)
    regexes = [_template_regex(t) for t in captions.HELDOUT_WITH_FACE]
    assert all(any(r.match(c) for r in regexes) for c in held)
    assert held == captions.family_captions("heldout", chars, faces)  # reproducible
    # held-out templates use only words of the training templates; new-word ones do not
    def words(templates):
        return {w for t in templates for w in re.findall(r"[a-z]+", t.replace("{what}", "")
                                                        .replace("{face}", ""))}
    assert words(captions.HELDOUT_WITH_FACE) <= words(captions.TRAINING_TEMPLATES)
    assert words(captions.NEW_WORDS_WITH_FACE) - words(captions.TRAINING_TEMPLATES)
    with pytest.raises(ValueError, match="unknown caption family 'odd'"):
        captions.family_captions("odd", chars, faces)


def test_corpus_texts_include_alt_texts():
    from datasets import Dataset

    images = Dataset.from_dict({"text": ["a, the digit 7", ""],
                                "alt_texts": [["the number 7 in a"], []]})
    speech = Dataset.from_dict({"text": ["one two three"]})
    assert sorted(corpus_texts(speech, None, images)) == sorted(
        ["one two three", "a, the digit 7", "the number 7 in a"])


def test_caption_noise_replaces_tokens_with_plain_text_ids():
    from lm import formats
    from lm.vocab import MultimodalVocab, train_bpe

    v = MultimodalVocab.build(train_bpe(["the digit 7 in Caladea Bold"] * 3 + ["a b c d"],
                                        vocab_size=300), audio_size=4, image_size=4)
    text = "the digit 7 in Caladea Bold, the digit 7 in Caladea Bold"
    clean = v.encode_text(text)
    assert formats.noisy_text(v, text, 0.0, random.Random(0)) == clean
    a = formats.noisy_text(v, text, 0.3, random.Random(5))
    assert a == formats.noisy_text(v, text, 0.3, random.Random(5)) and len(a) == len(clean)
    assert 0 < sum(x != y for x, y in zip(a, clean, strict=True)) < len(clean)
    specials = set(v.special_ids.values())
    for seed in range(20):  # every token replaced: plain text ids only, never a special
        noisy = formats.noisy_text(v, text, 1.0, random.Random(seed))
        assert all(0 <= i < v.layout["text_size"] and i not in specials for i in noisy)
    # the noisy ids go into the sample in place of the caption's
    ids = formats.caption_to_image(v, a, torch.zeros(2, 2, dtype=torch.long))
    assert ids[1: 1 + len(a)] == a


def test_unigram_baseline_by_hand():
    # train units 0 0 1 (dedup: 0 1) and 2: counts with add-one = [2, 2, 2, 1] of 7
    out = unigram_unit_nll([torch.tensor([0, 0, 1]), torch.tensor([2])], [torch.tensor([3, 3])],
                           4)
    assert out["units"] == 1 and out["nll_per_unit"] == round(-math.log(1 / 7), 4)
    out = unigram_unit_nll([torch.tensor([0, 0, 1])], [torch.tensor([0, 1])], 2, dedup=False)
    # counts [3, 2] of 5: mean of -log 3/5 and -log 2/5
    assert out["nll_per_unit"] == round(-(math.log(0.6) + math.log(0.4)) / 2, 4)
    with pytest.raises(ValueError, match="out of range"):
        unigram_unit_nll([torch.tensor([0])], [torch.tensor([5])], 4)


def test_number_ends_follow_the_phones(monkeypatch):
    phones = {32: ("th", "er", "d", "iy", "t", "uw"), 33: ("th", "er", "d", "iy", "th", "r", "iy")}
    monkeypatch.setattr(counting, "number_phones", lambda n: phones[n])
    flat = ["pau", *phones[32], *phones[33], "pau"]
    timed = [[p, 0.1 * i, 0.1 * (i + 1)] for i, p in enumerate(flat)]
    ends = counting.number_ends(timed, [32, 33])
    assert ends == pytest.approx([0.7, 1.4])
    assert counting.number_ends(timed, [33, 32]) is None  # phones disagree: skipped
    assert counting.number_ends(timed, [32]) is None  # phones left over: skipped


def test_continues_count():
    assert counting.continues_count("uh forty five forty", "forty five")
    assert not counting.continues_count("forty and five", "forty five")
    assert not counting.continues_count("", "six")
    assert counting.continues_count("Sixty-Eight.", "sixty eight")  # normalised


def test_counting_sequences_parse_back():
    seqs = counting_sequences()
    assert seqs["thirty two thirty three thirty four"] == [32, 33, 34]
    assert seqs["forty fifty sixty seventy eighty"] == [40, 50, 60, 70, 80]
    assert all(len(set(b - a for a, b in zip(s, s[1:], strict=False))) == 1
               for s in seqs.values())


@pytest.mark.skipif(not HAVE_FLITE, reason="needs flite and t2p (make system-deps)")
def test_counting_prompts_are_cut_after_a_number(tmp_path):
    """Real flite prompts: held-out sentences in the test voice, unused sequences in training
    voices, each cut at the end of a number within 1.5-2 s, with the next number known."""
    seqs = counting_sequences()
    texts = list(seqs)
    random.Random(1).shuffle(texts)
    data = tmp_path / "speech"
    train_texts, heldout = texts[:30], texts[30:45]
    for split, rows in {"train": [{"text": t, "voice": "slt", "phones": [["pau", 0, 1]]}
                                  for t in train_texts],
                        "valid": [{"text": heldout[0], "voice": "awb", "phones": []}],
                        "test": [{"text": heldout[1], "voice": "rms", "phones": []}]}.items():
        (data / split).mkdir(parents=True)
        (data / split / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "heldout_sentences.txt").write_text("\n".join(heldout) + "\n")
    prompts = counting.build_prompts(data, tmp_path / "prompts", count=3)
    assert len(prompts["valid"]) == 3 and 1 <= len(prompts["test"]) <= 3
    assert {p["voice"] for p in prompts["test"]} == {"rms"}
    assert {p["voice"] for p in prompts["valid"]} == {"slt"}
    for split, rows in prompts.items():
        for p in rows:
            assert (p["text"] in heldout) == (split == "test")
            assert p["text"] not in train_texts
            assert 1.5 <= p["cut_seconds"] <= 2.0 < p["duration"]
            k = len(p["heard_in_prompt"])
            assert p["heard_in_prompt"] == seqs[p["text"]][:k]
            assert p["next_number"] == seqs[p["text"]][k]
            assert (tmp_path / "prompts" / split / p["file"]).exists()
    # cached: a second call reads the index instead of synthesising
    assert counting.build_prompts(data, tmp_path / "prompts", count=3) == prompts


def test_seed_spread_summary():
    rows = [{"seed": s, "figures": {"faithfulness_seen": v}} for s, v in
            ((0, 0.8), (1, 0.7), (2, 0.9))]
    out = summarise(rows)["faithfulness_seen"]
    assert out == {"lowest": 0.7, "highest": 0.9, "median": 0.8, "spread": 0.2}


def test_native_bf16_defaults_leave_an_explicit_choice(monkeypatch):
    from recipes.builtin import run_demo

    monkeypatch.setattr(run_demo, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(run_demo.torch.cuda, "is_available", lambda: False)
    out = run_demo.native_bf16_defaults({"speech": {}, "lm": {"mixed_precision": "no"}})
    assert out == {"speech": {"mixed_precision": "bf16"}, "image": {"mixed_precision": "bf16"},
                   "lm": {"mixed_precision": "no"}}
    monkeypatch.setattr(run_demo, "cpu_has_native_bf16", lambda: False)
    assert run_demo.native_bf16_defaults({"speech": {}, "lm": {}}) == {"speech": {}, "lm": {}}


def test_continue_counting_chooses_on_valid_and_scores_test(tmp_path, monkeypatch,
                                                            tiny_tokenizer):
    """The counting stage on a tiny random bundle, with the recogniser replaced by canned
    answers: the setting that wins on the validation prompts becomes the bundle's default, the
    test share counts the continuations that hold the next number, the ceiling the originals'."""
    import numpy as np
    import soundfile as sf
    from conftest import speechlike
    from helpers import make_bundle

    import speechtok.metrics.wer as wer
    from lm.pipelines import GENERATION_FILE
    from recipes.builtin import demo_generate

    bundle = make_bundle(tmp_path / "bundle", tiny_tokenizer)
    prompts_dir = tmp_path / "prompts"
    index = {}
    for split in ("valid", "test"):
        (prompts_dir / split).mkdir(parents=True)
        index[split] = []
        for i, (text, nxt) in enumerate((("one two three", "three"), ("ten eight six", "six"))):
            sf.write(prompts_dir / split / f"count_{i}.wav",
                     speechlike(2.5, 16000, seed=i).astype(np.float32), 16000)
            index[split].append({"file": f"count_{i}.wav", "text": text, "voice": "x",
                                 "duration": 2.5, "cut_seconds": 1.6, "next_words": nxt})
    (prompts_dir / "prompts.json").write_text(json.dumps(index))
    calls = []

    def fake_transcribe(paths, jobs=1):
        calls.append([p.name for p in paths])
        answers = {1: ["uh three four", "six"],  # valid, the second setting: both right
                   3: ["three", "seven"],  # test: one of two
                   4: ["three", "six"]}.get(len(calls) - 1, ["", "eight nine"])
        return answers[: len(paths)]

    monkeypatch.setattr(wer, "transcribe", fake_transcribe)
    out = demo_generate.continue_counting(bundle, tmp_path / "unused", prompts_dir,
                                          tmp_path / "out")
    assert [r["valid_next_number_share"] for r in out["sweep_on_valid"]] == [0.0, 1.0, 0.0]
    assert out["default"] == demo_generate.COUNTING_SETTINGS[1]
    saved = json.loads((bundle / GENERATION_FILE).read_text())["speech"]
    assert saved["temperature"] == demo_generate.COUNTING_SETTINGS[1]["temperature"]
    assert out["next_number_share"] == 0.5 and out["originals_rest_share"] == 1.0
    assert out["with_any_number_word"] == 1.0  # "three" and "seven" are number words
    assert [r["continues"] for r in out["rows"]] == [True, False]
    assert all(n.endswith("_original_rest.wav") for n in calls[4])
    assert (tmp_path / "out" / "test" / "count_0_continuation.wav").exists()
