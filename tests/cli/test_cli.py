"""The `finetuner` command, run in-process: fit on an image folder, then eval, encode, index and search."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import finetuner
from finetuner.cli import app
from finetuner.data import export_fashion_mnist

runner = CliRunner()


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    train = export_fashion_mnist(root / "train", "train", per_class=6)
    return train, export_fashion_mnist(root / "eval", "test", per_class=4)


@pytest.fixture(scope="module")
def trained(image_folders, tmp_path_factory):
    train, evaluation = image_folders
    out = tmp_path_factory.mktemp("run")
    result = runner.invoke(app, [
        "fit", "test_cnn", str(train), "--eval-data", str(evaluation), "--no-pretrained", "--epochs", "2",
        "--batch-size", "20", "--output-dim", "8", "--output-dir", str(out),
    ])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_fit_prints_metrics_before_and_after_and_saves(trained):
    out, output = trained
    assert "before" in output and "after" in output and "map@r" in output
    assert (out / "model" / "config.json").is_file()
    assert (out / "report" / "report.html").is_file()
    last = output.strip().splitlines()[-1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert last.startswith("validation data: tuned is ")  # eval data given, no test data: validation is judged
    for part in ("all", "seen", "new"):
        prefix = "" if part == "all" else part + "/"
        if prefix + "recall@1" in metrics["after"]:
            assert f"untuned on {part} classes (recall@1 {metrics['before'][prefix + 'recall@1']:.3f}" in last


def test_eval_prints_the_metrics_as_json(trained, image_folders):
    out, _ = trained
    result = runner.invoke(app, ["eval", str(out / "model"), str(image_folders[1])])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert 0.0 <= metrics["recall@1"] <= 1.0 and "map@r" in metrics


def test_encode_writes_normalised_vectors(trained, image_folders, tmp_path):
    out, _ = trained
    files = sorted(str(p) for p in image_folders[1].rglob("*.png"))[:3]
    target = tmp_path / "vectors.npy"
    result = runner.invoke(app, ["encode", str(out / "model"), *files, "--output", str(target)])
    assert result.exit_code == 0, result.output
    vectors = np.load(target)
    assert vectors.shape == (3, 8)
    np.testing.assert_allclose(vectors, finetuner.load(out / "model").encode(files), atol=1e-5)


def test_index_then_search_finds_the_query_itself_first(trained, image_folders, tmp_path):
    out, _ = trained
    index_folder = tmp_path / "index"
    result = runner.invoke(app, ["index", str(out / "model"), str(image_folders[1]), "--output", str(index_folder)])
    assert result.exit_code == 0, result.output
    query = sorted(str(p) for p in image_folders[1].rglob("*.png"))[5]
    result = runner.invoke(app, ["search", str(index_folder), query, "-k", "3"])
    assert result.exit_code == 0, result.output
    first_hit = result.output.splitlines()[1]
    assert first_hit.strip().startswith("1.") and first_hit.strip().endswith(query)


def test_list_models_and_display(tmp_path):
    listed = runner.invoke(app, ["list-models"])
    assert listed.exit_code == 0 and "efficientnet_lite0" in listed.output and "resnet50" in listed.output
    shown = runner.invoke(app, ["display", "test_cnn"])
    assert shown.exit_code == 0, shown.output
    assert "layer1" in shown.output and "avgpool" in shown.output


def test_bad_input_exits_with_a_clear_message(tmp_path):
    result = runner.invoke(app, ["fit", "test_cnn", str(tmp_path / "missing"), "--no-pretrained"])
    assert result.exit_code == 1  # a runtime error; 2 is for usage errors
    assert "missing" in result.output
    result = runner.invoke(app, ["fit", "resnet5O", "fashion-mnist"])
    assert result.exit_code == 1 and "resnet50" in result.output


def test_encode_accepts_a_folder_like_index(trained, image_folders, tmp_path):
    out, _ = trained
    target = tmp_path / "folder.npy"
    result = runner.invoke(app, ["encode", str(out / "model"), str(image_folders[1]), "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert np.load(target).shape == (len(list(image_folders[1].rglob("*.png"))), 8)
