"""Caption wordings of the glyph corpus: many ways to ask for one character in one face.

A corpus with one caption template teaches the template, not the request: the demo LM trained on
"Inter Bold, the digit 7" drew the right glyph for 1 of 30 captions worded any other way (issue
20). So each training image carries several wordings, drawn from

  templates  the frame around the request ("{what} in {face}", "a picture of {what}", ...),
             with the face name or without it;
  synonyms   of the character's name ("the digit 7", "the number 7", "capital G", ...);
  case       as written, capitalised, lower case, upper case: of the frame, the face name and
             the character's name, never of the character itself ("SHOW THE SMALL LETTER q").
             Case-folding the character too ("capital g" for G) made the token " g" mean G in
             some captions and g in others: the LM trained on such captions drew the requested
             glyph for 0.10 of the test captions (docs/EXPERIMENTS.md, issue 20).

Some templates are held out of training and used only for evaluation, so faithfulness is
measured on wordings the LM never saw. The evaluation families:

  canonical  "{face}, {what}" as the first demo words it (the corpus' `text` column)
  seen       a training template, synonym and case drawn per image
  heldout    a held-out template: the training captions' words in a frame or order no training
             caption has (training synonyms and cases)
  new_words  a held-out template with words no training caption has ("render", "glyph")
  no_face    a training template without the face name
"""

from __future__ import annotations

import random

# "{c}": the character. Every name of a letter states its case in words (see the docstring).
CHAR_NAMES = {
    "digit": ("the digit {c}", "the number {c}", "the numeral {c}", "digit {c}"),
    "uppercase": ("the uppercase letter {c}", "the capital letter {c}", "capital {c}",
                  "uppercase {c}", "the letter {c} in upper case"),
    "lowercase": ("the lowercase letter {c}", "the small letter {c}", "lowercase {c}",
                  "the letter {c} in lower case"),
}
CANONICAL = "{face}, {what}"
SEEN_WITH_FACE = (CANONICAL, "{what} in {face}", "{what}, set in {face}",
                  "a picture of {what} in {face}", "{face} font: {what}",
                  "an image of {what} in the {face} typeface", "{what} ({face})",
                  "show {what} in {face}")
SEEN_WITHOUT_FACE = ("{what}", "a picture of {what}", "an image of {what}", "show {what}")
# Never in training. Held-out templates put the training captions' own words in new frames and
# orders; new-word templates frame the request with words no training caption has, which an LM
# that learned English only from this corpus cannot know (their tokens' embeddings were never
# trained): reported apart, as the limit of a from-scratch LM, not folded into "held out".
HELDOUT_WITH_FACE = ("in {face}, {what}", "{what}, {face} font",
                     "show an image of {what} in {face}",
                     "a picture in the {face} typeface of {what}")
NEW_WORDS_WITH_FACE = ("render {what} using the {face} font", "{face} typeface, showing {what}",
                       "a drawing of {what} written in {face}", "the {face} glyph for {what}")
CASES = ("as written", "capitalised", "lower", "upper")
_CHAR = "\x00"  # stands for the character while the case is applied: the request keeps its case
FAMILIES = {"canonical": (CANONICAL,), "seen": SEEN_WITH_FACE, "heldout": HELDOUT_WITH_FACE,
            "new_words": NEW_WORDS_WITH_FACE, "no_face": SEEN_WITHOUT_FACE}
TRAINING_TEMPLATES = SEEN_WITH_FACE + SEEN_WITHOUT_FACE


def face_name(family: str, style: str) -> str:
    """How captions name a font face: "Caladea Bold", "URW Gothic" (regular styles unsaid)."""
    return family if style in ("Regular", "Book", "Roman") else f"{family} {style}"


def kind_of(ch: str) -> str:
    return "digit" if ch.isdigit() else "uppercase" if ch.isupper() else "lowercase"


def with_case(text: str, case: str) -> str:
    if case == "lower":
        return text.lower()
    if case == "upper":
        return text.upper()
    if case == "capitalised":
        return text[:1].upper() + text[1:]
    return text


def caption(template: str, ch: str, face: str, synonym: int = 0, case: str = "as written"
            ) -> str:
    names = CHAR_NAMES[kind_of(ch)]
    what = names[synonym % len(names)].format(c=_CHAR)
    return with_case(template.format(what=what, face=face), case).replace(_CHAR, ch)


def canonical_caption(ch: str, face: str) -> str:
    """The corpus' `text`: the first demo's only wording ("Caladea Bold, the digit 7")."""
    return caption(CANONICAL, ch, face)


def random_caption(rng: random.Random, templates: tuple[str, ...], ch: str, face: str) -> str:
    """A template, a synonym of the character's name and a case, each uniformly."""
    return caption(rng.choice(templates), ch, face, rng.randrange(len(CHAR_NAMES[kind_of(ch)])),
                   rng.choice(CASES))


def training_wordings(ch: str, face: str, count: int, seed: str) -> list[str]:
    """`count` distinct training wordings of one image besides the canonical one (its
    `alt_texts`); drawn with a generator seeded by `seed` (the file name), so the corpus is
    the same on every build. Over thousands of images every template × synonym × case is
    seen many times; storing all 192 per image would only bloat the metadata."""
    rng = random.Random(seed)
    out: dict[str, None] = {}
    canonical = canonical_caption(ch, face)
    for _ in range(20 * count):
        text = random_caption(rng, TRAINING_TEMPLATES, ch, face)
        if text != canonical:
            out[text] = None
        if len(out) == count:
            break
    return list(out)


def family_captions(family: str, chars: list[str], faces: list[str], seed: int = 0
                    ) -> list[str]:
    """One caption of evaluation family `family` per (character, face), drawn reproducibly."""
    if family not in FAMILIES:
        raise ValueError(f"unknown caption family {family!r}; choose from {sorted(FAMILIES)}")
    if family == "canonical":
        return [canonical_caption(c, f) for c, f in zip(chars, faces, strict=True)]
    rng = random.Random(f"{family}:{seed}")
    return [random_caption(rng, FAMILIES[family], c, f) for c, f in zip(chars, faces, strict=True)]
