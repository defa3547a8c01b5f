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
