"""fit(layer_name="auto", output_dim="auto") continues with the probe's winner, and says so."""

import json

from typer.testing import CliRunner

import finetuner
from finetuner.cli import app

from .conftest import IMAGE


def test_fit_auto_continues_with_the_best_probed_layer_and_head(cnn, small_data, cache_dir):
    run = finetuner.fit(
        cnn, small_data, layer_name="auto", output_dim="auto", freeze=True, input_size=IMAGE, epochs=1,
        batch_size=16, cache_dir=cache_dir, num_workers=0, device="cpu",
    )  # fmt: skip
    probed = run.metrics["probe"]
    rows, chosen = probed["rows"], probed["chosen"]
    assert chosen == rows[0] and chosen["score"] == max(r["score"] for r in rows)
    assert {r["layer"] for r in rows} >= {"stage1"} and all(r["head"] != "none" for r in rows)  # freeze=True
    assert run.model.embedding_dim() == chosen["output_dim"]
    if chosen["layer_name"] is not None:  # None: the default embedding layer
        assert run.model.spec["layer_name"] == chosen["layer_name"]
    page = run.report(cache_dir / "report").read_text()
    assert "Layer and head probe" in page


def test_cli_probe_prints_the_leaderboard_and_fit_options(tmp_path):
    result = CliRunner().invoke(
        app, ["probe", "test_cnn", "fashion-mnist", "--heads", "none,linear:8", "--no-pretrained",
              "--input-size", "3,32,32"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "score (map@r)" in result.output
    options = json.loads(result.output.strip().splitlines()[-1].removeprefix("fit with: "))
    assert set(options) >= {"layer_name", "output_dim"}
