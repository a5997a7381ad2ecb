"""CLI conventions: --version, -h, python -m finetuner, exit codes, one-line errors, config files."""

import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

import finetuner
from finetuner.cli import app
from finetuner.config import FitConfig

runner = CliRunner()


def test_version_and_short_help():
    assert runner.invoke(app, ["--version"]).output.strip() == f"finetuner {finetuner.__version__}"
    result = runner.invoke(app, ["fit", "-h"])
    assert result.exit_code == 0 and "--learning-rate" in result.output and "--model-options" in result.output


def test_python_dash_m_runs_the_command():
    result = subprocess.run([sys.executable, "-m", "finetuner", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and finetuner.__version__ in result.stdout


def test_runtime_error_is_one_line_with_exit_1_and_usage_error_exit_2(tmp_path):
    result = runner.invoke(app, ["encode", str(tmp_path / "missing"), "x"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1
    assert "config.json is missing" in result.output
    assert runner.invoke(app, ["fit", "--no-such-option", "1"]).exit_code == 2


def test_bad_option_value_names_the_option():
    result = runner.invoke(app, ["fit", "test_cnn", "fashion-mnist", "--output-dim", "-5"])
    assert result.exit_code == 1 and "--output-dim must be a positive size" in result.output


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["--debug", "encode", str(tmp_path / "missing"), "x"])
    assert result.exit_code == 1 and isinstance(result.exception, FileNotFoundError)


def test_print_config_writes_what_fit_reads_and_python_gets_the_same(tmp_path):
    printed = runner.invoke(
        app, ["fit", "test_cnn", "data", "--print-config", "--epochs", "3", "--freeze", "first:2", "--k", "1,5",
              "--model-options", '{"pooling": "cls"}', "--layer-name", "1", "--no-augment"]
    )
    assert printed.exit_code == 0, printed.output
    path = tmp_path / "run.json"
    path.write_text(printed.output)
    from_file = FitConfig.load(path)
    assert from_file.training.epochs == 3 and from_file.model.freeze == "first:2"
    assert from_file.evaluation.k == (1, 5) and from_file.model.layer_name == "1"
    assert from_file.model.model_options == {"pooling": "cls"} and from_file.data.augment is False
    python = FitConfig.from_options(
        epochs=3, freeze="first:2", k=(1, 5), model_options={"pooling": "cls"}, layer_name="1", augment=False,
        output_dir="finetuner-output",
    )
    assert from_file.to_dict() == python.to_dict()
    again = runner.invoke(app, ["fit", "test_cnn", "data", "--print-config", "--config", str(path)])
    assert json.loads(again.output) == json.loads(printed.output)


def test_cli_and_python_produce_the_same_run_from_one_config_file(tmp_path):
    from finetuner.data import export_fashion_mnist

    data = export_fashion_mnist(tmp_path / "data", "train", per_class=4)
    config = FitConfig.from_options(pretrained=False, freeze=True, output_dim=8, epochs=2, batch_size=16,
                                    num_workers=0, cache_dir=str(tmp_path / "cache"))
    path = config.save(tmp_path / "run.yaml")
    result = runner.invoke(app, ["fit", "test_cnn", str(data), "--config", str(path),
                                 "--output-dir", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    run = finetuner.fit("test_cnn", str(data), config=path)
    from_cli = finetuner.load(tmp_path / "cli" / "model")
    for (name, a), b in zip(run.model.state_dict().items(), from_cli.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu()), name
    assert run.metrics["after"] == pytest.approx(json.loads((tmp_path / "cli" / "metrics.json").read_text())["after"])
