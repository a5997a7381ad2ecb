"""Typed settings at the boundary: every config field and every `fit` CLI option, fed wrong values, answers with
one line naming the setting (never a TypeError or a message from inside Python or a library)."""

import dataclasses
import random

import pytest
from typer.testing import CliRunner

from finetuner.cli import app
from finetuner.config import SECTIONS, FitConfig
from finetuner.core.fields import ConfigError
from finetuner.training import TrainConfig

runner = CliRunner()
RAW = ("not supported between", "cannot be interpreted", "unexpected keyword", "invalid literal", "Traceback")
WRONG = ["x", "", 8.5, -3, 0, float("nan"), float("inf"), True, None, [1, "a"], ["x"], (), {"a": 1}, {1: 2}, object()]
FIELDS = [(section, field.name) for section, cls in SECTIONS.items() for field in dataclasses.fields(cls)]


def assert_clear(message: str, name: str) -> None:
    assert len(message.strip().splitlines()) == 1, message
    assert name in message, message
    assert not any(raw in message for raw in RAW), message


@pytest.mark.parametrize(("section", "name"), FIELDS)
def test_every_field_takes_a_right_value_or_names_itself_for_a_wrong_one(section, name):
    rng = random.Random(name)  # seeded per field: the same draws on every run
    for value in rng.sample(WRONG, 8):
        try:
            config = FitConfig.from_options(**{name: value})
        except ValueError as error:  # ConfigError is a ValueError; a TypeError fails the test
            assert_clear(str(error), name)
        else:
            kept = getattr(getattr(config, section), name)
            assert kept is not None or value is None or name == "lora", (name, value)


def test_wrong_types_name_field_value_and_expectation():
    with pytest.raises(ConfigError, match=r"^epochs must be a whole number, got 'x'\.$"):
        FitConfig.from_options(epochs="x")
    with pytest.raises(ConfigError, match=r"^batch_size must be a whole number, got 8\.5\.$"):
        TrainConfig(batch_size=8.5)
    with pytest.raises(ConfigError, match="learning_rate must be a finite number or None, got nan"):
        FitConfig.from_options(learning_rate=float("nan"))
    with pytest.raises(ValueError, match="Unknown fit option 'epochz'. Did you mean epochs"):
        FitConfig.from_options(epochz=3)


def test_values_of_the_right_kind_are_converted():
    config = FitConfig.from_options(batch_size=8.0, k=[1, 5], matryoshka_dims=64, report_to="tensorboard")
    assert config.training.batch_size == 8 and isinstance(config.training.batch_size, int)
    assert config.evaluation.k == (1, 5) and config.training.matryoshka_dims == (64,)
    assert config.output.report_to == ("tensorboard",)


def cli_options():
    """Every `fit` option that takes a value (flags take none), by its flag."""
    from finetuner.cli import fit

    flags = []
    for parameter in fit.__signature__.parameters.values():
        if parameter.kind is parameter.KEYWORD_ONLY and parameter.name in FitConfig.option_names():
            info = parameter.annotation.__metadata__[0]
            if info.metavar != "":  # "": a flag
                flags.append("--" + parameter.name.replace("_", "-"))
    return flags


BAD_TEXT = ["x", "8.5", "nan", "-3", "0", "1,x", '{"a": 1}', "[1, 2]", "{oops"]


@pytest.mark.parametrize("flag", cli_options())
def test_every_cli_option_takes_its_value_or_names_its_flag(flag, tmp_path):
    rng = random.Random(flag)
    for text in rng.sample(BAD_TEXT, 5):
        result = runner.invoke(app, ["fit", "test_cnn", "data", "--print-config", flag, text])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        if result.exit_code:
            assert result.exit_code in (1, 2), result.output
            if result.exit_code == 1:
                assert result.output.startswith("error: "), result.output
                assert_clear(result.output, flag)


def test_config_file_errors_say_where_the_setting_goes(tmp_path):
    cases = {
        "batch_size: 8\nepochs: 2\n": "batch_size belongs under training:",
        "training: [1, 2]\n": "training must be a mapping of training settings",
        "training:\n  epochz: 2\n": "Unknown training setting 'epochz'. Did you mean epochs?",
        "model:\n  epochs: 2\n": "epochs belongs under training:, not model:",
        "trainig:\n  epochs: 2\n": "Did you mean training?",
        "training:\n  batch_size: 8.5\n": "training.batch_size must be a whole number, got 8.5",
    }
    for text, expected in cases.items():
        path = tmp_path / "run.yaml"
        path.write_text(text)
        with pytest.raises(ValueError) as error:
            FitConfig.load(path)
        assert expected in str(error.value) and str(path) in str(error.value)
        assert_clear(str(error.value), expected)


def test_a_config_file_error_on_the_cli_is_one_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  batch_size: 8.5\n")
    result = runner.invoke(app, ["fit", "test_cnn", "data", "--print-config", "--config", str(path)])
    assert result.exit_code == 1 and "training.batch_size must be a whole number" in result.output
    assert_clear(result.output, "batch_size")


def test_cache_dir_that_is_a_file_is_refused(tmp_path):
    file = tmp_path / "cache"
    file.write_text("")
    with pytest.raises(ConfigError, match="cache_dir must be a folder"):
        FitConfig.from_options(cache_dir=str(file))
