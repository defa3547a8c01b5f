"""Config precedence: dataclass defaults → YAML file → `--key value` overrides; and the command
line options built from the config dataclasses, so that `--help` lists every field.

Several dataclasses (model config, training config) are filled from one flat namespace, so a
user writes `--codebook_size 512 --steps 2000` without caring which object owns the key. An
unknown key is an error naming it, so a typo never silently trains the default.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML or command-line value to the field's declared type."""
    if isinstance(annotation, str):  # postponed annotations: evaluate the simple forms we use
        annotation = eval(annotation, {**vars(typing), **vars(types)}, {})  # noqa: S307
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], key)
    if isinstance(value, str) and annotation is not str:
        try:
            value = yaml.safe_load(value)  # "0.5" → 0.5, "[2, 2]" → [2, 2], "true" → True
        except yaml.YAMLError as err:
            raise ValueError(f"cannot parse --{key} {value!r}: {err}") from err
    try:
        if annotation is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if annotation in (int, float, str):
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise TypeError
            return annotation(value)
        if origin is tuple:
            items = value if isinstance(value, (list, tuple)) else [value]
            return tuple(_coerce(v, args[0], key) for v in items)
        if origin is dict:
            if not isinstance(value, dict):
                raise TypeError
            return {str(k): _coerce(v, args[1], key) for k, v in value.items()}
    except (TypeError, ValueError) as err:
        raise ValueError(f"--{key}: {value!r} is not a valid {annotation}") from err
    return value


def parse_overrides(tokens: list[str]) -> dict[str, str]:
    """`["--steps", "100", "--lr=1e-3"]` → {"steps": "100", "lr": "1e-3"}."""
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise ValueError(f"expected --key value, got {tok!r}")
        key = tok[2:].replace("-", "_")
        if "=" in key:
            key, val = key.split("=", 1)
            i += 1
        elif i + 1 < len(tokens):
            val = tokens[i + 1]
            i += 2
        else:
            raise ValueError(f"--{key} needs a value")
        out[key] = val
    return out


def build_configs(classes: list[type], yaml_path: str | Path | None = None,
                  overrides: dict[str, Any] | None = None) -> list[Any]:
    """Instantiate each dataclass in `classes` from YAML then overrides (later wins)."""
    values: dict[str, Any] = {}
    if yaml_path is not None:
        path = Path(yaml_path)
        if not path.exists():
            raise FileNotFoundError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of key: value")
        for section in loaded.values() if all(isinstance(v, dict) for v in loaded.values()) \
                and loaded and not _any_field_named(classes, loaded) else [loaded]:
            values.update(section)
    values.update(overrides or {})
    known = {f.name for c in classes for f in dataclasses.fields(c)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError("unknown config key(s): " + ", ".join(
            k + "".join(f" (did you mean {m!r}?)" for m in
                        difflib.get_close_matches(k, sorted(known), n=1)) for k in unknown))
    result = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        kwargs = {f.name: _coerce(values[f.name], hints[f.name], f.name)
                  for f in dataclasses.fields(cls) if f.name in values}
        result.append(cls(**kwargs))
    return result


def _any_field_named(classes: list[type], mapping: dict) -> bool:
    names = {f.name for c in classes for f in dataclasses.fields(c)}
    return any(k in names for k in mapping)


# what a resumed run may change: how long it runs, how often it evaluates, saves and logs,
# how it loads data; anything else would make the rest of the run another experiment
RESUMABLE_FIELDS = ("steps", "eval_every", "save_every", "log_every", "num_workers",
                    "max_minutes", "stop_after_steps", "cache_mb", "eval_max_items",
                    "eval_batches", "tensorboard")


def check_resumed_config(saved: str | Path, *configs: Any) -> None:
    """A ValueError naming every field of `configs` that differs from the run's saved config
    (`saved`, its train_config.yaml) other than RESUMABLE_FIELDS; nothing when none was saved."""
    saved = Path(saved)
    if not configs or not saved.exists():
        return
    before = yaml.safe_load(saved.read_text()) or {}
    changed = []
    for config in configs:
        old = before.get(type(config).__name__) or {}
        now = json.loads(json.dumps(dataclasses.asdict(config)))
        changed += [f"{k} {old[k]!r} → {v!r}" for k, v in now.items()
                    if k in old and k not in RESUMABLE_FIELDS and old[k] != v]
    if changed:
        raise ValueError(f"--resume with a changed config ({'; '.join(changed)}): a resumed run "
                         f"may change only {', '.join(RESUMABLE_FIELDS)}; give the saved "
                         f"values (in {saved}) or start a new run in another --out")


def dump_config(path: str | Path, *configs: Any) -> None:
    """Write the resolved configs as YAML (one section per dataclass) into the run directory."""
    doc = {type(c).__name__: json.loads(json.dumps(dataclasses.asdict(c))) for c in configs}
    Path(path).write_text(yaml.safe_dump(doc, sort_keys=False))


def type_name(hint: Any) -> str:
    """`int`, `float | None`, `tuple[int, ...]`: a field's type as a user reads it."""
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def add_config_arguments(parser, classes: list[type]) -> None:
    """One `--field VALUE` option per field of the config dataclasses `classes`, grouped by
    class, each with its type, default and help line. Defaults are left out of the parsed
    namespace (argparse.SUPPRESS), so `given_overrides` returns only what the user typed and
    the YAML file keeps its precedence below the command line."""
    import argparse

    seen: set[str] = set()
    for cls in classes:
        doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        group = parser.add_argument_group(f"{cls.__name__} (YAML or --key value)", doc)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in seen:
                continue
            seen.add(f.name)
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            shown = json.dumps(list(default) if isinstance(default, tuple) else default)
            help_text = f.metadata.get("help", "")
            group.add_argument(f"--{f.name}", dest=f"config.{f.name}", metavar=type_name(
                hints[f.name]).upper().replace(" ", ""), default=argparse.SUPPRESS,
                help=f"{help_text} (default: {shown})".replace("%", "%%"))


def given_overrides(args) -> dict[str, str]:
    """The config fields set on the command line (from `add_config_arguments`)."""
    return {k[len("config."):]: v for k, v in vars(args).items() if k.startswith("config.")}


def normalise_config_flags(tokens: list[str], classes: list[type]) -> list[str]:
    """`--codebook-size 8` → `--codebook_size 8` for config fields (their options are spelt
    with underscores, as the fields are)."""
    names = {f.name for c in classes for f in dataclasses.fields(c)}
    out = []
    for tok in tokens:
        if tok.startswith("--"):
            key, sep, value = tok[2:].partition("=")
            if key.replace("-", "_") in names:
                tok = f"--{key.replace('-', '_')}{sep}{value}"
        out.append(tok)
    return out


def add_run_arguments(parser, what: str) -> None:
    """The options of every training command besides --out and the config fields: --config,
    --resume and the Hub upload when training ends (--push-to-hub, --private, --revision)."""
    parser.add_argument("--config", help="YAML file of config values")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/checkpoints/last if present")
    parser.add_argument("--push-to-hub", metavar="REPO",
                        help=f"upload the {what} to this Hub repo when training ends (token "
                        "from HF_TOKEN or the saved login; checkpoints and logs are not "
                        "uploaded)")
    parser.add_argument("--private", action="store_true",
                        help="with --push-to-hub: a private repo")
    parser.add_argument("--revision", metavar="BRANCH", default=None,
                        help="with --push-to-hub: the branch to push to (created if missing)")
