"""Counting prompts: does the unit LM continue a count? (issue 20)

A prompt is the first 1.5-2 s of a spoken counting sequence ("thirty two thirty three | thirty
four"), cut at the end of a number, so the number that should come next is known. A
continuation passes when what pocketsphinx hears in it (the continuation alone) contains that
next number's words.

Test prompts: the held-out voice (never in any training) speaks the held-out counting sentences
(OUT/heldout_sentences.txt: never spoken in training by any voice), in the file's order.
Validation prompts (to choose sampling settings): the training voices speak counting sequences
that are in no split of the corpus. flite synthesises both afresh, with phone timings.

The cut: `t2p` gives each number's phones; they are matched in order against the utterance's
phone timings from `flite -psdur`, so the end time of every number is known. The latest number
end in [min_seconds, max_seconds] with a number after it is the cut; a sequence without one is
skipped.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from functools import cache
from pathlib import Path

from recipes.builtin.make_speech_corpus import synthesize
from recipes.builtin.speech_texts import counting_sequences
from speechtok.metrics.wer import normalize, number_words


@cache
def number_phones(n: int) -> tuple[str, ...]:
    """flite's phones of one number ("thirty two" → th er d iy t uw), stress marks dropped."""
    out = subprocess.run(["t2p", number_words(n)], capture_output=True, text=True,
                         check=True).stdout
    return tuple(re.sub(r"\d", "", p) for p in out.split() if p != "pau")


def number_ends(phones: list[list], numbers: list[int]) -> list[float] | None:
    """End time (s) of each number in an utterance's [[phone, start, end], ...], or None where
    the phones do not match the numbers' (then the utterance is skipped, not guessed)."""
    spoken = [(p, end) for p, _, end in phones if p != "pau"]
    ends, i = [], 0
    for n in numbers:
        want = number_phones(n)
        got = tuple(p for p, _ in spoken[i: i + len(want)])
        if got != want:
            return None
        i += len(want)
        ends.append(spoken[i - 1][1])
    return ends if i == len(spoken) else None


def make_prompt(text: str, numbers: list[int], voice: str, wav: Path, min_seconds: float,
                max_seconds: float) -> dict | None:
    row = synthesize(text, voice, wav)
    ends = number_ends(row["phones"], numbers)
    if ends is None:
        return None
    cuts = [k for k, end in enumerate(ends[:-1]) if min_seconds <= end <= max_seconds]
    if not cuts:
        return None
    k = cuts[-1]
    return {**{key: row[key] for key in ("file", "text", "voice", "duration")},
            "numbers": numbers, "cut_seconds": round(ends[k], 3), "heard_in_prompt": numbers[
                : k + 1], "next_number": numbers[k + 1], "next_words": number_words(
                    numbers[k + 1])}


def build_prompts(speech_data: Path, out: Path, count: int = 20, min_seconds: float = 1.5,
                  max_seconds: float = 2.0) -> dict[str, list[dict]]:
    """{"test": [...], "valid": [...]} prompts (see the module docstring), synthesised into
    out/{test,valid}/ and listed in out/prompts.json (reused when present)."""
    index = out / "prompts.json"
    if index.exists():
        return json.loads(index.read_text())
    sequences = counting_sequences()
    rows = {s: [json.loads(line) for line in (speech_data / s / "metadata.jsonl").read_text()
                .splitlines()] for s in ("train", "valid", "test")}
    test_voice = rows["test"][0]["voice"]
    train_voices = sorted({r["voice"] for r in rows["train"] if r.get("phones")})
    heldout = [t for t in (speech_data / "heldout_sentences.txt").read_text().splitlines()
               if t in sequences]
    in_corpus = {r["text"] for split in rows.values() for r in split} | set(heldout)
    unused = [t for t in sequences if t not in in_corpus]
    random.Random(0).shuffle(unused)
    plans = {"test": [(t, test_voice) for t in heldout],
             "valid": [(t, train_voices[i % len(train_voices)]) for i, t in enumerate(unused)]}
    prompts: dict[str, list[dict]] = {}
    for split, plan in plans.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        prompts[split] = []
        for i, (text, voice) in enumerate(plan):
            row = make_prompt(text, sequences[text], voice, out / split / f"count_{i:03d}.wav",
                              min_seconds, max_seconds)
            if row is not None:
                prompts[split].append(row)
            if len(prompts[split]) == count:
                break
        if len(prompts[split]) < count:
            print(f"note: only {len(prompts[split])} {split} counting prompts could be cut at "
                  f"{min_seconds}-{max_seconds} s (of {len(plan)} sequences)")
    index.write_text(json.dumps(prompts, indent=1))
    return prompts


NUMBER_WORDS = frozenset(w for n in range(100) for w in number_words(n).split())


def has_number_word(heard: str) -> bool:
    """Whether the recognised words hold any number word (0-99): the continuation at least
    counts, even if not the next number."""
    return bool(set(normalize(heard)) & NUMBER_WORDS)


def continues_count(heard: str, next_words: str) -> bool:
    """Whether the recognised words contain the next number's words, in order, adjacent."""
    words, want = normalize(heard), next_words.split()
    return any(words[i: i + len(want)] == want for i in range(len(words) - len(want) + 1))
