"""`probe`: a leaderboard of (layer, head) pairs scored on held-out items and held-out classes."""

import pytest
from matplotlib.figure import Figure

import finetuner
from finetuner.data import PairData
from finetuner.probing import Leaderboard, Recipe, plot_leaderboard, probe

from .conftest import IMAGE

RECIPE = Recipe(epochs=2, batch_size=16, device="cpu")


def run_probe(model, data, eval_data=None, **kwargs):
    options = {"heads": ["none", "linear:8", "projection:16"], "recipe": RECIPE, "num_workers": 0}
    return probe(model, data, eval_data, input_size=IMAGE, **options | kwargs)


@pytest.fixture(scope="module")
def board(tmp_path_factory, small_data):
    from .conftest import TinyCNN

    return run_probe(TinyCNN().eval(), small_data, cache_dir=tmp_path_factory.mktemp("cache"))


def test_one_row_per_layer_and_head_best_first(board):
    assert isinstance(board, Leaderboard) and len(board) == 3 * 3
    assert {(row.layer, row.head) for row in board} == {
        (layer, head) for layer in ("stem", "stage1", "avgpool") for head in ("none", "linear", "projection")
    }
    assert [row.score for row in board] == sorted((row.score for row in board), reverse=True)
    assert board.best is board[0] and board.layers == ["stem", "stage1", "avgpool"]
    # 4 classes and no eval_data: held-out items of the 2 training classes and 2 held-out classes
    for row in board:
        assert set(row.metrics) == {"items", "classes"}
        assert row.score == pytest.approx((row.metrics["items"]["map@r"] + row.metrics["classes"]["map@r"]) / 2)
        assert (row.train_seconds == 0) == (row.head == "none")
    dims = {(row.layer, row.head): row.output_dim for row in board}
    assert dims[("stage1", "none")] == 12 and dims[("stage1", "linear")] == 8 and dims[("avgpool", "projection")] == 16


def test_table_and_plot(board):
    table = str(board).splitlines()
    assert table[0].split()[:4] == ["#", "layer", "head", "dim"] and "items map@r" in table[0]
    assert "classes recall@1" in table[0] and "score (map@r)" in table[0]
    assert len(table) == 2 + len(board) and table[2].split()[0] == "1" and "avgpool (default)" in str(board)
    figure = plot_leaderboard(board)
    assert isinstance(figure, Figure) and len(figure.axes[0].patches) == len(board)


def test_fit_options_build_the_probed_model(board, cnn):
    for row in (next(r for r in board if r.head == "none"), next(r for r in board if r.head == "projection")):
        model = finetuner.build_model(cnn, input_size=IMAGE, **row.fit_options())
        assert model.spec["layer_name"] == (row.layer_name or "avgpool")
        assert (model.head is None) == (row.head == "none")
        assert model.head is None or model.head.config()["out_features"] == row.output_dim


def test_eval_data_is_the_validation(cnn, small_data, eval_data, cache_dir):
    board = run_probe(cnn, small_data, eval_data, layers=1, heads=["none"], cache_dir=cache_dir)
    assert len(board) == 1 and set(board.best.metrics) == {"eval"}
    assert board.best.layer == "avgpool" and board.best.score == board.best.metrics["eval"]["map@r"]


def test_bad_input_is_explained(cnn, small_data, cache_dir):
    with pytest.raises(ValueError, match="projection:<size>"):
        run_probe(cnn, small_data, heads=["mlp:3"], cache_dir=cache_dir)
    with pytest.raises(ValueError, match="labelled"):
        run_probe(cnn, PairData(["a", "b"], ["c", "d"]), cache_dir=cache_dir)
    with pytest.raises(ValueError, match="metric-learning"):
        run_probe(cnn, small_data, recipe=RECIPE.replace(loss="CrossEntropyLoss"), cache_dir=cache_dir)
    with pytest.raises(ValueError, match="larger val_split"):
        run_probe(cnn, small_data.subset(range(0, 48, 6)), heads=["none"], cache_dir=cache_dir)
    with pytest.raises(ValueError, match="primary_metric"):
        run_probe(cnn, small_data, heads=["none"], primary_metric="accuracy", cache_dir=cache_dir)


def test_the_layers_come_from_one_onnxruntime_graph(cnn, small_data, cache_dir):
    import json

    board = run_probe(cnn, small_data, heads=["none"], cache_dir=cache_dir)
    assert len(list((cache_dir / "onnx").glob("*.onnx"))) == 1  # one graph outputs every candidate layer
    records = [json.loads(path.read_text()) for path in cache_dir.glob("*/meta.json")]
    assert len(records) == len(board.layers) == 3 and {r["engine"] for r in records} == {"onnxruntime"}
