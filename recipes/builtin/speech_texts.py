"""The texts of the built-in speech corpus: counting sequences and template sentences.

Counting sequences ("twenty one twenty two twenty three"): every run of 3-6 numbers up or down
in steps of 1, 2, 5 or 10 within 0-99. Template sentences ("anna painted the green box in the
garden"): TEMPLATES filled from small word lists. Both 3-10 words (MIN_WORDS, MAX_WORDS), so
flite speaks each in a few seconds; `sentence_pool` mixes them, COUNTING_SHARE counting.
"""

from __future__ import annotations

import random

MIN_WORDS, MAX_WORDS = 3, 10
COUNTING_SHARE = 0.2  # fraction of sentences that are counting sequences


def counting_sequences() -> dict[str, list[int]]:
    """Every counting sequence of 3-6 numbers (up, down, in steps of 1, 2, 5, 10) of 3-10
    words, as {text: numbers}."""
    from speechtok.metrics.wer import number_words  # here: the corpus' --help needs no venv

    out: dict[str, list[int]] = {}  # insertion-ordered: deterministic for a given seed
    for step in (1, 2, 5, 10):
        for start in range(0, 100):
            for length in range(3, 7):
                for sign in (1, -1):
                    seq = [start + sign * step * k for k in range(length)]
                    if min(seq) < 0 or max(seq) > 99:
                        continue
                    text = " ".join(number_words(n) for n in seq)
                    if MIN_WORDS <= len(text.split()) <= MAX_WORDS:
                        out.setdefault(text, seq)
    return out


def counting_sentences() -> list[str]:
    return list(counting_sequences())


NAMES = (
    "anna ben clara david emma frank grace henry lucy mark nora oliver paul rose sam tom kate "
    "john mary peter".split()
)
COLOURS = "red blue green yellow black white brown orange pink grey purple".split()
ADJECTIVES = (
    "small big old new little heavy bright quiet happy warm cold soft round long short "
    "clean".split()
)
# (singular, plural) pairs, so templates can say "three red boxes".
ANIMALS = [(a, a + "s") for a in "cat dog bird horse cow rabbit duck goat".split()] + [
    ("mouse", "mice"),
    ("fox", "foxes"),
    ("sheep", "sheep"),
]
THINGS = [
    (t, t + "s")
    for t in "ball book cup chair table hat coat car boat bag lamp key pen "
    "door window bottle shoe bike kite clock plate".split()
] + [("box", "boxes"), ("glass", "glasses"), ("brush", "brushes"), ("knife", "knives")]
PLACES = (
    "garden kitchen park station market school library forest village city river beach "
    "field office shop house".split()
)
VERBS_PAST = (
    "found lost bought painted carried opened washed moved dropped sold cleaned saw took "
    "broke fixed wanted".split()
)
VERBS_IMPERATIVE = "open close bring take find move wash carry paint hold".split()
VERBS_INTRANSITIVE = "jumped ran slept sat walked hid waited played".split()
PREPOSITIONS = ["on", "under", "near", "behind", "beside", "in front of", "next to"]
TIMES = [
    "today",
    "yesterday",
    "tonight",
    "this morning",
    "every day",
    "on monday",
    "on friday",
    "last week",
    "at noon",
    "after lunch",
]
WEATHER = "sunny cold warm windy quiet dark bright wet".split()
RELATIVES = "sister brother mother father uncle aunt friend cousin".split()
FOODS = "apples eggs oranges cakes bananas sandwiches lemons tomatoes".split()
SMALL_NUMBERS = "two three four five six seven eight nine ten twelve".split()

TEMPLATES = [
    "the {adj} {animal} is {prep} the {thing}",
    "{name} {verb} the {colour} {thing}",
    "{name} {verb} a {adj} {colour} {thing} {time}",
    "please {imp} the {colour} {thing}",
    "please {imp} the {adj} {thing} to the {place}",
    "where did you put the {colour} {thing}",
    "{name} has {num} {colour} {things}",
    "we saw {num} {adj} {animals} in the {place}",
    "the {animal} {intrans} {prep} the {colour} {thing}",
    "my {relative} lives near the {place}",
    "is the {thing} {prep} the {thing2}",
    "{name} and {name2} went to the {place} {time}",
    "it is {weather} in the {place} {time}",
    "do you like {colour} {things}",
    "i would like {num} {food} please",
    "the {colour} {thing} is in the {place}",
    "{name} {verb} my {relative}'s {thing} {time}",
    "there are {num} {animals} {prep} the {place}",
    "can you see the {adj} {animal}",
    "{name} {intrans} in the {place} {time}",
]


def template_sentence(rng: random.Random) -> str:
    """One random sentence from TEMPLATES, filled with words from the vocabulary lists."""
    animal, animals = rng.choice(ANIMALS)
    thing, things = rng.choice(THINGS)
    name, name2 = rng.sample(NAMES, 2)
    thing2 = rng.choice([t for t, _ in THINGS if t != thing])
    fill = dict(
        adj=rng.choice(ADJECTIVES),
        animal=animal,
        animals=animals,
        thing=thing,
        things=things,
        thing2=thing2,
        name=name,
        name2=name2,
        colour=rng.choice(COLOURS),
        verb=rng.choice(VERBS_PAST),
        imp=rng.choice(VERBS_IMPERATIVE),
        intrans=rng.choice(VERBS_INTRANSITIVE),
        prep=rng.choice(PREPOSITIONS),
        place=rng.choice(PLACES),
        time=rng.choice(TIMES),
        weather=rng.choice(WEATHER),
        relative=rng.choice(RELATIVES),
        food=rng.choice(FOODS),
        num=rng.choice(SMALL_NUMBERS),
    )
    return rng.choice(TEMPLATES).format(**fill)


def sentence_pool(size: int, rng: random.Random) -> list[str]:
    """``size`` distinct texts of 3-10 words, about COUNTING_SHARE of them counting sequences."""
    counting = counting_sentences()
    rng.shuffle(counting)
    pool: dict[str, None] = dict.fromkeys(counting[: round(COUNTING_SHARE * size)])
    attempts = 0
    while len(pool) < size:
        attempts += 1
        if attempts > 100 * size + 10_000:
            raise RuntimeError(f"could not generate {size} distinct sentences; lower the count")
        text = template_sentence(rng)
        if MIN_WORDS <= len(text.split()) <= MAX_WORDS:
            pool[text] = None
    texts = list(pool)
    rng.shuffle(texts)
    return texts
