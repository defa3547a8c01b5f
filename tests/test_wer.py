"""WER on hand examples, and the pocketsphinx recogniser on flite speech."""

import shutil
import subprocess
from pathlib import Path

import pytest

from speechtok.metrics.wer import (
    DEFAULT_MODEL_DIR,
    normalize,
    transcribe,
    word_error_rate,
)


def test_normalize():
    assert normalize("Hello, World!  It's   fine.") == ["hello", "world", "it's", "fine"]


def test_word_error_rate_counts_each_kind_of_edit():
    assert word_error_rate("a b c", "a b c") == 0
    assert word_error_rate("a b c", "a x c") == pytest.approx(1 / 3)  # substitution
    assert word_error_rate("a b c", "a c") == pytest.approx(1 / 3)  # deletion
    assert word_error_rate("a b c", "a b c d") == pytest.approx(1 / 3)  # insertion
    assert word_error_rate("kitten sat", "sitting sat on") == 1.0  # 1 sub + 1 ins over 2
    # an empty reference among others: its hypothesis' words are insertions
    assert word_error_rate(["a b", "..."], ["a b", "x y"]) == 1.0


def test_word_error_rate_pools_over_corpus():
    refs = ["The cat sat.", "one two three four five six"]
    hyps = ["the cat sat", "one two tree four six"]  # 0 edits, then 1 sub + 1 del
    # Pooled: 2 edits / 9 reference words (not the mean of 0 and 2/6).
    assert word_error_rate(refs, hyps) == pytest.approx(2 / 9)
    assert word_error_rate("a b", "") == 1.0
    assert word_error_rate("a", "x y z") == 3.0  # insertions can push WER past 1


def test_word_error_rate_rejects_bad_input():
    with pytest.raises(ValueError, match="hypotheses"):
        word_error_rate(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="no words"):
        word_error_rate(["..."], ["a"])


HAVE_TOOLS = (
    shutil.which("flite") is not None
    and shutil.which("pocketsphinx_batch") is not None
    and Path(DEFAULT_MODEL_DIR, "en-us.lm.bin").exists()
)


@pytest.mark.skipif(not HAVE_TOOLS, reason="needs flite, pocketsphinx and pocketsphinx-en-us")
def test_transcribe_flite_digits(tmp_path):
    text = "one two three four five"
    wav16 = tmp_path / "slt.wav"
    wav8 = tmp_path / "kal.wav"  # kal writes 8 kHz: exercises the resampling path
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav16)], check=True)
    subprocess.run(["flite", "-voice", "kal", "-t", text, "-o", str(wav8)], check=True)
    hyps = transcribe([wav16, wav8])
    assert len(hyps) == 2
    for hyp in hyps:
        found = set(hyp.split()) & set(text.split())
        assert len(found) >= 2, hyp


def test_normalize_spells_numbers_as_a_recogniser_writes_them():
    assert normalize("Press 1, or dial 8500.") == (
        "press one or dial eight thousand five hundred".split())
    assert normalize("a 28.8 kilobit modem") == "a twenty eight point eight kilobit modem".split()
    assert normalize("3D audio") == ["three", "d", "audio"]
    assert normalize("42 and 100") == "forty two and one hundred".split()
