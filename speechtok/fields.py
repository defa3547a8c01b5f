"""Config fields that explain themselves: a default plus one line of help.

Every config dataclass (tokenizers, their trainers, the LM) declares its fields with `option`,
so `--help` of `speechtok train` and `lm train` can list each field with its type, default and
meaning (speechtok.training.config builds the parser from them), and a test can check that no
field is left unexplained.
"""

from __future__ import annotations

import copy
from dataclasses import Field, field
from typing import Any


def option(default: Any, help: str) -> Any:
    """A dataclass field with `default` (a dict, list or set is copied per instance) and `help`,
    one line for `--help`."""
    if isinstance(default, (dict, list, set)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def help_of(f: Field) -> str:
    """The help line of a dataclass field ("" when it has none)."""
    return f.metadata.get("help", "")


def override(cls: type, name: str, default: Any) -> Any:
    """The field `name` of dataclass `cls` with another default and the same help: how a
    subclass changes a shared field's default without restating its meaning."""
    from dataclasses import fields

    for f in fields(cls):
        if f.name == name:
            return option(default, help_of(f))
    raise AttributeError(f"{cls.__name__} has no field {name!r}")


# the largest value any integer size of a model config may take: every layer, channel count
# and grid side of these models is far below it, and a config edited to 10⁶ layers or a 10⁶-pixel
# resolution is refused before anything is allocated. Fields that legitimately go higher (a
# sample rate, a codebook of 2²⁰ codes, step counts) name their own bound in `caps`.
SIZE_LIMIT = 65_536


def check_sizes(config, caps: dict[str, int] | None = None) -> None:
    """A ValueError naming the first integer field (or integer in a tuple field) of the
    dataclass `config` above its cap (`caps[name]`, else SIZE_LIMIT)."""
    from dataclasses import fields

    caps = caps or {}
    for f in fields(config):
        value = getattr(config, f.name)
        values = value if isinstance(value, (tuple, list)) else (value,)
        cap = caps.get(f.name, SIZE_LIMIT)
        for v in values:
            if isinstance(v, int) and not isinstance(v, bool) and v > cap:
                raise ValueError(f"{f.name} = {v:,} is over its limit of {cap:,}: is the config "
                                 "damaged or edited by hand?")


def bounded(kind: type, low: float, high: float):
    """An argparse `type=` that accepts a finite `kind` (int or float) in [low, high] and
    otherwise says so in one line (`argument --temperature: must be a finite number from 0 to
    100, got nan`)."""
    import argparse
    import math

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'a whole' if kind is int else 'a'} number, got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(
                f"must be a finite number from {low:g} to {high:g}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse
