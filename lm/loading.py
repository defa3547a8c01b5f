"""Loading a bundle's files so that a damaged or tampered one fails with one line naming the
file, before anything large is allocated, and never runs code: JSON read with the file named,
the LM's config checked against sane sizes, its weights checked tensor by tensor against the
architecture the config describes, and its tokenizer refused when it asks for custom code."""

from __future__ import annotations

import json
from pathlib import Path

# the largest size a config may give each field (a config edited to 10⁶ layers would
# allocate past memory before any weight is read)
LM_CONFIG_LIMITS = {"num_hidden_layers": 1024, "hidden_size": 65_536,
                    "intermediate_size": 262_144, "num_attention_heads": 1024,
                    "num_key_value_heads": 1024, "vocab_size": 10_000_000,
                    "max_position_embeddings": 1_048_576, "head_dim": 4096}


def read_json(path: str | Path) -> dict:
    """A JSON object from `path`; broken JSON is a ValueError naming the file."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: broken JSON ({err})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def check_lm_config(path: str | Path) -> dict:
    """The LM's config.json, with every size in LM_CONFIG_LIMITS checked."""
    config = read_json(path)
    for name, limit in LM_CONFIG_LIMITS.items():
        value = config.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 0 < value <= limit):
            raise ValueError(f"{path}: {name} = {value!r} is outside 1 … {limit:,}")
    if config.get("auto_map"):
        raise ValueError(f"{path}: names custom code (auto_map); bundles load stock "
                         "transformers architectures only")
    return config


def check_tokenizer_files(folder: str | Path) -> None:
    """Refuse a tokenizer whose files ask for custom code (transformers would offer to run
    it): `auto_map` in tokenizer_config.json."""
    path = Path(folder) / "tokenizer_config.json"
    if path.exists() and read_json(path).get("auto_map"):
        raise ValueError(f"{path}: names custom tokenizer code (auto_map); bundles load "
                         "stock tokenizers only")


def load_lm(folder: str | Path, dtype):
    """The bundle's causal LM: config and weights checked first (module docstring)."""
    from transformers import AutoModelForCausalLM

    from speechtok.hub.loading import quiet_transformers, safetensors_shapes

    folder = Path(folder)
    check_lm_config(folder / "config.json")
    weights = folder / "model.safetensors"
    safetensors_shapes(str(weights))  # a truncated or empty file fails here, named
    with quiet_transformers():  # no "Loading weights" bar on every load
        model, info = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=dtype, output_loading_info=True, trust_remote_code=False)
    problems = [f"{name} {sorted(info[key])[:3]}" for key, name in
                (("missing_keys", "missing"), ("unexpected_keys", "unexpected"),
                 ("mismatched_keys", "mis-shaped")) if info.get(key)]
    if problems:
        raise ValueError(f"{weights} does not fit the LM its config.json describes: "
                         f"{'; '.join(problems)}")
    return model
