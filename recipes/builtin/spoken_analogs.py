"""Small offline analogs of the spoken-LM benchmarks, synthesised by flite in the held-out voice.

Three pairwise tests (lm.spoken_benchmark scores them):
  numbers    a counting sequence with its right last number vs a wrong one ("thirty two thirty
             three thirty four" vs "... thirty seven"): the count must be followed
  words      a word of the corpus vocabulary vs a pronounceable non-word made from it by
             changing its first vowel ("garden" vs "gorden"), each said alone (sWUGGY)
  sentences  a held-out template sentence vs the same words shuffled (sBLIMP, coarsely)

Texts come from no training split: counting sequences and sentences are the corpus' held-out
ones (OUT/heldout_sentences.txt) or in no split at all; every word of `words` is a training
word, so the test asks whether the LM learned words, not whether it saw these recordings.
Layout: OUT/<test>/<id>_good.wav, <id>_bad.wav and OUT/<test>/pairs.jsonl; reused when present.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from recipes.builtin import speech_texts
from recipes.builtin.make_speech_corpus import synthesize
from recipes.builtin.speech_texts import counting_sequences
from speechtok.metrics.wer import number_words

TESTS = ("numbers", "words", "sentences")
_VOWEL_SWAP = {"a": "o", "e": "a", "i": "u", "o": "i", "u": "e"}


def vocabulary() -> list[str]:
    """The corpus templates' content words of 5+ letters, sorted (shorter ones too often turn
    into real words, or homophones of them, when a vowel changes: grey → gray)."""
    lists = [speech_texts.NAMES, speech_texts.COLOURS, speech_texts.ADJECTIVES,
             [a for pair in speech_texts.ANIMALS for a in pair],
             [t for pair in speech_texts.THINGS for t in pair], speech_texts.PLACES,
             speech_texts.VERBS_PAST, speech_texts.VERBS_IMPERATIVE,
             speech_texts.VERBS_INTRANSITIVE, speech_texts.WEATHER, speech_texts.RELATIVES,
             speech_texts.FOODS]
    return sorted({w for words in lists for w in words if len(w) >= 5 and w.isalpha()})


def non_word(word: str, known: set[str]) -> str | None:
    """`word` with its first vowel letter changed (a→o, e→a, i→u, o→i, u→e): pronounceable,
    the same length; None when that gives a known word."""
    m = re.search(r"[aeiou]", word)
    if m is None:
        return None
    made = word[: m.start()] + _VOWEL_SWAP[m.group()] + word[m.end():]
    return None if made in known or made == word else made


def wrong_last_number(numbers: list[int], rng: random.Random) -> int | None:
    """A wrong last number for a counting sequence: off by 2-5 steps of the sequence, within
    0-99, not any number already in it, and said in as many words as the right one when
    such a number exists (so that length does not give the answer away)."""
    step = numbers[-1] - numbers[-2]
    options = [numbers[-1] + k * step for k in (-4, -3, -2, 2, 3, 4, 5)]
    options = [n for n in options if 0 <= n <= 99 and n not in numbers]
    same = [n for n in options
            if len(number_words(n).split()) == len(number_words(numbers[-1]).split())]
    options = same or options
    return rng.choice(options) if options else None


def plan_pairs(speech_data: Path, count: int, seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """{test: [(right text, wrong text), ...]} with up to `count` pairs each."""
    rng = random.Random(seed)
    heldout = (speech_data / "heldout_sentences.txt").read_text().splitlines()
    sequences = counting_sequences()
    spoken = {json.loads(line)["text"] for split in ("train", "valid", "test")
              for line in (speech_data / split / "metadata.jsonl").read_text().splitlines()}
    counting = [t for t in heldout if t in sequences] + [t for t in sequences if t not in spoken
                                                         and t not in heldout]
    numbers = []
    for text in counting:
        seq = sequences[text]
        wrong = wrong_last_number(seq, rng) if len(seq) >= 3 else None
        if wrong is not None:
            numbers.append((text, " ".join(number_words(n) for n in [*seq[:-1], wrong])))
        if len(numbers) == count:
            break
    vocab = vocabulary()
    known = set(vocab)
    words = [(w, nw) for w in vocab if (nw := non_word(w, known)) is not None]
    rng.shuffle(words)
    sentences = []
    for text in (t for t in heldout if t not in sequences):
        tokens = text.split()
        shuffled = tokens[:]
        for _ in range(10):
            rng.shuffle(shuffled)
            if shuffled != tokens:
                sentences.append((text, " ".join(shuffled)))
                break
        if len(sentences) == count:
            break
    return {"numbers": numbers, "words": words[:count], "sentences": sentences}


def build_analogs(speech_data: Path, out: Path, count: int = 100, voice: str | None = None
                  ) -> dict[str, Path]:
    """Synthesise the pairs (see the module docstring) in `voice` (default: the corpus' held-out
    voice) into `out`; {test: its pairs.jsonl}."""
    if voice is None:
        voice = json.loads((speech_data / "corpus.json").read_text())["settings"]["test_voice"]
    files = {}
    for test, pairs in plan_pairs(speech_data, count).items():
        folder = out / test
        index = folder / "pairs.jsonl"
        files[test] = index
        if index.exists():
            continue
        if not pairs:
            raise ValueError(f"no {test} pairs could be made from {speech_data}")
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, (good, bad) in enumerate(pairs):
            names = {}
            for member, text in (("good", good), ("bad", bad)):
                names[member] = f"{i:03d}_{member}.wav"
                synthesize(text, voice, folder / names[member])
            lines.append(json.dumps({"id": f"{i:03d}", **names, "good_text": good,
                                     "bad_text": bad}))
        tmp = index.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(index)  # written last: a folder with pairs.jsonl is complete
    return files
