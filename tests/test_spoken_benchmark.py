"""The spoken-LM benchmark: the ZeroSpeech 2021, slamkit and pairs.jsonl readers on tiny files
in those layouts, the accuracy and its interval, scoring with a tiny bundle, the CLI, and the
demo's flite analogs."""

from __future__ import annotations

import json
import random
import shutil

import pytest
import soundfile as sf
import torch
from conftest import speechlike
from helpers import make_bundle

from lm.cli import main as lm_main
from lm.evaluate import speech_unit_nll, unit_log_likelihoods
from lm.pipelines import Bundle
from lm.spoken_benchmark import (
    pair_accuracy,
    read_pairs_jsonl,
    read_slamkit,
    read_zerospeech,
    score_pairs,
    wilson_interval,
)
from recipes.builtin.spoken_analogs import (
    build_analogs,
    non_word,
    plan_pairs,
    vocabulary,
    wrong_last_number,
)


def _wav(path, seed=0, seconds=0.5):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, speechlike(seconds, seed=seed), 16000)
    return path


def test_zerospeech_reader_pairs_by_id_and_voice(tmp_path):
    folder = tmp_path / "zr" / "lexical" / "dev"
    rows = ["id,filename,voice,frequency,word,phones,length,correct"]
    for i, (word, voice) in enumerate([("w1", "Alex"), ("w1", "Bea"), ("w2", "Alex")]):
        for correct in (1, 0):
            name = f"f{i}{correct}"
            _wav(folder / f"{name}.wav", seed=i)
            rows.append(f"{word},{name},{voice},3,x,x x,2,{correct}")
    (folder / "gold.csv").write_text("\n".join(rows) + "\n")
    pairs = read_zerospeech(tmp_path / "zr", "lexical")
    assert [(p.id, p.good.name, p.bad.name) for p in pairs] == [
        ("w1/Alex", "f01.wav", "f00.wav"), ("w1/Bea", "f11.wav", "f10.wav"),
        ("w2/Alex", "f21.wav", "f20.wav")]
    (folder / "gold.csv").write_text("id,filename\nw1,f01\n")
    with pytest.raises(ValueError, match="gold.csv:2"):
        read_zerospeech(tmp_path / "zr", "lexical")
    with pytest.raises(FileNotFoundError, match="syntactic/dev"):
        read_zerospeech(tmp_path / "zr", "syntactic")


def test_slamkit_reader_takes_the_first_unless_named_wrong(tmp_path):
    for name in ("0_incorrect.wav", "0_correct.wav", "1_a.wav", "1_b.wav"):
        _wav(tmp_path / "sc" / name)
    pairs = read_slamkit(tmp_path / "sc")
    assert [(p.id, p.good.name, p.bad.name) for p in pairs] == [
        ("0", "0_correct.wav", "0_incorrect.wav"), ("1", "1_a.wav", "1_b.wav")]
    _wav(tmp_path / "sb" / "3+x.wav")
    with pytest.raises(ValueError, match="has 1 files"):
        read_slamkit(tmp_path / "sb", "+")


def test_pairs_jsonl_reader_names_a_bad_line(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"id": 1, "good": "a.wav", "bad": "b.wav"}\n\n{"id": 2}\n')
    with pytest.raises(ValueError, match="pairs.jsonl:3"):
        read_pairs_jsonl(f)
    f.write_text('{"id": 1, "good": "a.wav", "bad": "b.wav"}\n')
    assert read_pairs_jsonl(f)[0].good == tmp_path / "a.wav"


def test_accuracy_counts_ties_as_half_and_has_an_honest_interval():
    r = pair_accuracy([1.0, 2.0, 3.0, 0.0], [0.0, 2.0, 4.0, -1.0])
    assert r["accuracy"] == 0.625 and r["pairs"] == 4 and r["chance"] == 0.5
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-3)  # not [1, 1]
    with pytest.raises(ValueError):
        pair_accuracy([], [])


@pytest.fixture
def speech_bundle(tmp_path, tiny_tokenizer):
    return make_bundle(tmp_path / "bundle", tiny_tokenizer)


def test_scores_are_the_lm_log_likelihood_of_the_units(speech_bundle, tmp_path):
    bundle = Bundle(speech_bundle, "cpu")
    _wav(tmp_path / "a.wav", 1)
    _wav(tmp_path / "b.wav", 2, seconds=0.8)
    f = tmp_path / "pairs.jsonl"
    f.write_text(json.dumps({"id": "x", "good": "a.wav", "bad": "b.wav"}) + "\n"
                 + json.dumps({"id": "same", "good": "a.wav", "bad": "a.wav"}) + "\n")
    result = score_pairs(bundle, read_pairs_jsonl(f), "sum")
    tok = bundle.tokenizer("speech")
    units = [tok.encode(torch.from_numpy(speechlike(s, seed=seed))[None])[0]
             for seed, s in ((1, 0.5), (2, 0.8))]
    (la, _), (lb, _) = unit_log_likelihoods(bundle.model, bundle.vocab, units)
    assert result["rows"][0]["good"] == pytest.approx(la, abs=1e-3)
    assert result["rows"][0]["bad"] == pytest.approx(lb, abs=1e-3)
    assert result["rows"][1]["good"] == result["rows"][1]["bad"]  # a tie counts one half
    assert result["accuracy"] == (0.5 + (la > lb)) / 2
    # the summed scores agree with the NLL per unit of the held-out evaluation
    nll = speech_unit_nll(bundle.model, bundle.vocab, units[:1])["nll_per_unit"]
    n = unit_log_likelihoods(bundle.model, bundle.vocab, units[:1])[0][1]
    assert -la / n == pytest.approx(nll, abs=1e-3)
    mean = score_pairs(bundle, read_pairs_jsonl(f), "mean")
    assert mean["rows"][0]["good"] == pytest.approx(la / n, abs=1e-3)


def test_cli_benchmark(speech_bundle, tmp_path, capsys):
    for name in ("0_good.wav", "0_wrong.wav", "1_good.wav", "1_wrong.wav"):
        _wav(tmp_path / "sc" / name, seed=len(name))
    out = tmp_path / "r.json"
    assert lm_main(["benchmark", "--model", str(speech_bundle), "--slamkit",
                    f"cloze={tmp_path / 'sc'}", "--json", str(out)]) == 0
    assert "cloze: " in capsys.readouterr().out
    assert json.loads(out.read_text())["cloze"]["pairs"] == 2
    assert lm_main(["benchmark", "--model", str(speech_bundle)]) == 2
    assert "no test given" in capsys.readouterr().err


def test_analog_texts_are_what_they_claim():
    known = set(vocabulary())
    assert "garden" in known and all(len(w) >= 5 for w in known)
    made = [non_word(w, known) for w in known]
    assert all(m is None or (m not in known and len(m) == len(w)) for m, w in
               zip(made, known, strict=True))
    assert non_word("garden", known) == "gorden"
    rng = random.Random(0)
    for seq in ([32, 33, 34], [64, 66, 68], [50, 45, 40], [1, 2, 3]):
        wrong = wrong_last_number(seq, rng)
        assert wrong is not None and wrong not in seq and 0 <= wrong <= 99
        assert (wrong - seq[-1]) % (seq[-1] - seq[-2]) == 0


def _corpus(root):
    heldout = ["thirty two thirty three thirty four", "anna painted the green box",
               "the small dog is on the hat"]
    root.mkdir(parents=True)
    (root / "heldout_sentences.txt").write_text("\n".join(heldout) + "\n")
    for split in ("train", "valid", "test"):
        (root / split).mkdir()
        (root / split / "metadata.jsonl").write_text(json.dumps({"text": "one two three"})
                                                     + "\n")
    (root / "corpus.json").write_text(json.dumps({"settings": {"test_voice": "rms"}}))
    return root


def test_analog_pairs_come_from_no_training_text(tmp_path):
    plan = plan_pairs(_corpus(tmp_path / "c"), 3)
    assert plan["numbers"][0] == ("thirty two thirty three thirty four",
                                  plan["numbers"][0][1])
    assert plan["numbers"][0][1].startswith("thirty two thirty three ")
    assert all(good != "one two three" for good, _ in plan["numbers"])
    assert [g for g, _ in plan["sentences"]] == ["anna painted the green box",
                                                 "the small dog is on the hat"]
    assert all(sorted(g.split()) == sorted(b.split()) and g != b for g, b in plan["sentences"])
    assert len(plan["words"]) == 3


@pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite (make system-deps)")
def test_build_analogs_with_flite(tmp_path):
    files = build_analogs(_corpus(tmp_path / "c"), tmp_path / "a", count=2)
    for name, f in files.items():
        pairs = read_pairs_jsonl(f)
        assert len(pairs) == 2, name
        assert all(p.good.exists() and p.bad.exists() for p in pairs)
    mtime = files["words"].stat().st_mtime
    build_analogs(_corpus(tmp_path / "c2"), tmp_path / "a", count=2)  # reused when present
    assert files["words"].stat().st_mtime == mtime
