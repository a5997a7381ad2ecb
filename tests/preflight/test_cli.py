"""`finetuner preflight MODEL DATA`: prints the curve and the verdict, writes the JSON, the plot and the report."""

import json

from typer.testing import CliRunner

from finetuner.cli import app
from finetuner.data import export_fashion_mnist


def test_cli_preflight_prints_the_verdict_and_writes_its_files(tmp_path):
    export_fashion_mnist(tmp_path / "train", "train", per_class=8)
    out = tmp_path / "pf.json"
    result = CliRunner().invoke(
        app, ["preflight", "test_cnn", str(tmp_path / "train"), "--shares", "0.5,1", "--seeds", "1", "--epochs", "1",
              "--no-pretrained", "--input-size", "3,32,32", "--output", str(out), "--plot", str(tmp_path / "pf.png"),
              "--report", str(tmp_path / "report")],
        env={"FINETUNER_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert [row["share"] for row in saved["curve"]] == [0.5, 1.0]
    assert saved["verdict"].startswith("Tuning") and saved["verdict"] in result.output
    assert "100%" in result.output and (tmp_path / "pf.png").is_file()
    assert "Will tuning help? (pre-flight)" in (tmp_path / "report" / "report.html").read_text()


def test_cli_preflight_refuses_bad_shares_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["preflight", "test_cnn", "fashion-mnist", "--shares", "0.5,2"])
    assert result.exit_code == 1 and "shares must be fractions in (0, 1]" in result.output
