"""The command lines tell the user every config field, and a mistyped field is an error that
names the field meant."""

from __future__ import annotations

import dataclasses

import pytest

from lm.cli import main as lm_main
from lm.cli import train_configs
from speechtok.cli import build_parser
from speechtok.cli import main as tok_main
from speechtok.fields import help_of
from speechtok.training.config import given_overrides
from speechtok.training.trainers import TRAINERS, trainer_configs

CONFIGS = [c for name in TRAINERS for c in trainer_configs(name)] + train_configs()


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_config_field_has_a_help_line(cls):
    missing = [f.name for f in dataclasses.fields(cls) if not help_of(f).strip()]
    assert not missing, f"{cls.__name__} fields without help: {missing}"


def _help(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_help_lists_fields_with_type_and_default(capsys):
    text = _help(tok_main, ["train", "speech", "--help"], capsys)
    for name in ("--codebook_size INT", "--steps INT", "--lr FLOAT", "--vtlp_range FLOAT"):
        assert name in text
    assert "(default: 2000)" in text  # the speech trainer's own default for steps
    image = _help(tok_main, ["train", "image", "--help"], capsys)
    assert "--disc_start INT" in image and "--vtlp_range" not in image
    lm = _help(lm_main, ["train", "--help"], capsys)
    assert "--block_size INT" in lm and "--loss_weights DICT[STR,FLOAT]" in lm


def test_unknown_key_names_the_nearest_field(capsys, tmp_path):
    argv = ["train", "speech", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
            "--codebok_size", "8"]
    assert tok_main(argv) == 2
    err = capsys.readouterr().err
    assert "codebok_size" in err and "did you mean 'codebook_size'" in err
    assert lm_main(["train", "--out", str(tmp_path / "lm"), "--block_sise", "8"]) == 2
    assert "did you mean 'block_size'" in capsys.readouterr().err


def test_command_line_values_are_only_those_typed():
    args, extra = build_parser().parse_known_args(
        ["train", "speech", "--data", "d", "--out", "o", "--steps", "5", "--lr=0.01"])
    assert given_overrides(args) == {"steps": "5", "lr": "0.01"} and extra == []
    with pytest.raises(SystemExit):  # no abbreviations: --codebook_s is not --codebook_size
        build_parser().parse_args(["train", "speech", "--data", "d", "--out", "o", "--codebook_s",
                              "8"])
