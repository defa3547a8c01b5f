"""How spoken-LM toolkits judge a unit LM: pairwise likelihood tests.

Each test is a list of pairs (the right member, the wrong one) of recordings: a word and a
pronounceable non-word (ZeroSpeech 2021 sWUGGY), a grammatical and an ungrammatical sentence
(sBLIMP), a story with its right and a wrong ending (sStoryCloze / tStoryCloze). The LM passes
a pair when it gives the right member the higher log-likelihood of its units; a tie counts one
half (as the ZeroSpeech 2021 evaluation does). Accuracy is reported with its chance level (0.5)
and a 95 % Wilson interval.

Layouts read:
- ZeroSpeech 2021 (`read_zerospeech`): ROOT/{lexical,syntactic}/{dev,test}/*.wav with a
  `gold.csv` (columns `filename`, `correct` 1/0, `id`, `voice`): the pair is the two files of
  one id and voice.
- slamkit (`read_slamkit`): a folder of wav files named `<index><sep><rest>.wav` (sep "_" for
  sWUGGY and StoryCloze, "+" for sBLIMP), two per index; as slamkit's loader, the first in name
  order is the right one, unless a name says `incorrect`/`wrong` (then that one is wrong).
- Our own (`read_pairs_jsonl`): `pairs.jsonl` lines `{"id", "good", "bad"}` (paths relative to
  the file), what the built-in demo writes for its flite analogs.

Scores are the log-likelihood per unit by default (`normalise="mean"`, slamkit's default), or
summed (`"sum"`, the ZeroSpeech baselines').
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from speechtok.jsonl import jsonl_rows
from speechtok.speech.io import load_audio

from .evaluate import unit_log_likelihoods

NORMALISATIONS = ("mean", "sum")


@dataclass(frozen=True)
class Pair:
    """One test item: the recording the LM should prefer and the one it should not."""

    id: str
    good: Path
    bad: Path


def read_zerospeech(root: str | Path, task: str, split: str = "dev") -> list[Pair]:
    """The pairs of ZeroSpeech 2021's `task` ("lexical": sWUGGY, "syntactic": sBLIMP)."""
    folder = Path(root) / task / split
    gold = folder / "gold.csv"
    if not gold.is_file():
        raise FileNotFoundError(f"{gold} not found: not a ZeroSpeech 2021 {task}/{split} folder")
    groups: dict[tuple[str, str], dict[int, Path]] = {}
    with gold.open(newline="") as f:
        for line, row in enumerate(csv.DictReader(f), 2):
            try:
                key, correct = (row["id"], row.get("voice", "")), int(row["correct"])
                path = folder / f"{row['filename']}.wav"
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{gold}:{line}: needs columns filename, id, correct (1/0): "
                                 f"{err}") from None
            groups.setdefault(key, {})[correct] = path
    pairs = [Pair(f"{i}/{v}" if v else i, g[1], g[0]) for (i, v), g in groups.items()
             if 0 in g and 1 in g]
    if not pairs:
        raise ValueError(f"{gold}: no (correct, incorrect) pair found")
    return pairs


_WRONG = re.compile(r"incorrect|wrong|negative", re.I)


def read_slamkit(folder: str | Path, sep: str = "_") -> list[Pair]:
    """The pairs of a slamkit-layout folder (files `<index><sep>...wav`, two per index)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.wav")) or sorted(folder.glob("*/*.wav"))
    if not files:
        raise FileNotFoundError(f"{folder}: no wav files")
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(f.name.split(sep)[0], []).append(f)
    pairs = []
    for index, members in groups.items():
        if len(members) != 2:
            raise ValueError(f"{folder}: index {index!r} has {len(members)} files, not 2 "
                             f"(separator {sep!r})")
        good, bad = sorted(members, key=lambda p: (bool(_WRONG.search(p.name)), p.name))
        pairs.append(Pair(index, good, bad))
    return pairs


def read_pairs_jsonl(path: str | Path) -> list[Pair]:
    """Pairs from a `pairs.jsonl` (`{"id", "good", "bad"}`, paths relative to its folder)."""
    path = Path(path)
    pairs = []
    for line_no, row in jsonl_rows(path):
        try:
            pairs.append(Pair(str(row["id"]), path.parent / row["good"],
                              path.parent / row["bad"]))
        except (KeyError, TypeError) as err:
            raise ValueError(f"{path}:{line_no}: expected {{\"id\", \"good\", \"bad\"}} "
                             f"({err})") from None
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (Wilson 1927): honest near 0 and 1 and for
    small n, where the normal approximation is not."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def pair_accuracy(good: list[float], bad: list[float]) -> dict:
    """Accuracy of `good[i] > bad[i]` (ties count 1/2), with chance and a 95 % interval."""
    if len(good) != len(bad) or not good:
        raise ValueError("need equally many (and some) scores for both members")
    wins = sum(1.0 if g > b else 0.5 if g == b else 0.0 for g, b in zip(good, bad, strict=True))
    lo, hi = wilson_interval(wins, len(good))
    return {"accuracy": round(wins / len(good), 4), "pairs": len(good), "chance": 0.5,
            "ci95": [round(lo, 4), round(hi, 4)]}


def score_pairs(bundle, pairs: list[Pair], normalise: str = "mean", batch_size: int = 16,
                progress: bool = False) -> dict:
    """Encode both members of every pair with the bundle's speech tokenizer (lm.pipelines
    .Bundle), score their units with its LM, and return `pair_accuracy` plus every pair's
    scores (`rows`)."""
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    tok = bundle.tokenizer("speech")
    if tok.layout.depth != 1:
        raise ValueError("pairwise likelihood tests need one unit a frame (a depth-1 speech "
                         "tokenizer)")
    units = []
    for pair in tqdm(pairs, disable=not progress, desc="encoding pairs"):
        for path in (pair.good, pair.bad):
            wav = load_audio(path, tok.layout.sample_rate)
            units.append(tok.encode(wav[None])[0].cpu())
    scores = unit_log_likelihoods(bundle.model, bundle.vocab, units, batch_size)
    values = [s / n if normalise == "mean" else s for s, n in scores]
    good, bad = values[0::2], values[1::2]
    result = pair_accuracy(good, bad)
    result["normalise"] = normalise
    result["rows"] = [{"id": p.id, "good": round(g, 4), "bad": round(b, 4)}
                      for p, g, b in zip(pairs, good, bad, strict=True)]
    return result


def run_benchmark(bundle, tests: dict[str, list[Pair]], normalise: str = "mean",
                  progress: bool = False) -> dict:
    """{test name: score_pairs(...)} for every test."""
    return {name: score_pairs(bundle, pairs, normalise, progress=progress)
            for name, pairs in tests.items()}


def summary_line(name: str, result: dict) -> str:
    lo, hi = result["ci95"]
    return (f"{name}: {result['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] over {result['pairs']} "
            f"pairs (chance {result['chance']})")


def without_rows(results: dict) -> dict:
    """The results without their per-pair rows (for printing)."""
    return {k: {f: v for f, v in r.items() if f != "rows"} for k, r in results.items()}

