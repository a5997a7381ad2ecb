"""`finetuner fit -h` as the README promises: every option with its default, flags without a value column."""

import dataclasses
import re

from typer.testing import CliRunner

from finetuner.cli import app
from finetuner.config import SECTIONS

runner = CliRunner()


def help_text(*command: str) -> str:
    result = runner.invoke(app, [*command, "-h"], env={"COLUMNS": "400", "NO_COLOR": "1"}, terminal_width=400)
    assert result.exit_code == 0, result.output
    return result.output


def option_rows(text: str) -> dict[str, str]:
    """Each option's row of the help table, its wrapped lines joined, by its flag."""
    rows, flag = {}, None
    for line in text.splitlines():
        found = re.match(r"│\s*(--[\w-]+)", line)
        if found:
            flag = found[1]
            rows[flag] = line.strip("│ ")
        elif flag and line.startswith("│"):
            rows[flag] += " " + line.strip("│ ")
        else:
            flag = None
    return rows


def test_fit_help_lists_every_setting_with_its_default():
    rows = option_rows(help_text("fit"))
    for cls in SECTIONS.values():
        for field in dataclasses.fields(cls):
            if field.name in ("example_input", "verbose"):
                continue
            flag = "--" + field.name.replace("_", "-")
            assert flag in rows, flag
            assert "[default: " in rows[flag], rows[flag]
    assert "[default: 15]" in rows["--epochs"] and "[default: 1,5,10]" in rows["--k"]
    assert "[default: pretrained]" in rows["--pretrained"] and "[default: False]" in rows["--freeze"]


def test_flags_show_no_value_and_output_dim_says_auto():
    rows = option_rows(help_text("fit"))
    flags = [flag for flag, row in rows.items() if f"--no-{flag[2:]}" in row]
    assert "--pretrained" in flags and "--augment" in flags
    for flag in flags:
        assert "<bool>" not in rows[flag], rows[flag]
    assert "INT|auto" in rows["--output-dim"]
    assert "<bool>" not in option_rows(help_text("export"))["--normalize"]


def test_loss_and_miner_options_have_their_own_text():
    rows = option_rows(help_text("fit"))
    loss, miner = (rows[flag].split("JSON", 1)[1] for flag in ("--loss-options", "--miner-options"))
    assert "loss" in loss and "miner" in miner and loss != miner


def test_index_kind_lists_every_index_kind():
    from finetuner.search.index import KINDS

    row = option_rows(help_text("index"))["--kind"]
    for kind in KINDS:
        assert kind in row, (kind, row)
