"""write_report: the page, its embedded images, escaping, and the PNG files next to it."""

import re

import numpy as np
import pytest
from PIL import Image

from finetuner.report import write_report

EVIL = "<script>alert('x')</script>"

HISTORY = [
    {"epoch": 1, "loss": 0.9, "eval/recall@1": 0.55, "eval/map@r": 0.21},
    {"epoch": 2, "loss": 0.6, "eval/recall@1": 0.62, "eval/map@r": 0.25},
    {"epoch": 3, "loss": 0.5, "eval/recall@1": 0.70, "eval/map@r": 0.31},
]
METRICS = {"before": {"recall@1": 0.5, "map@r": 0.3125}, "after": {"recall@1": 0.7, "map@r": 0.25}}
CONFIG = {"model": "resnet18", "epochs": 3, "train": {"learning_rate": 0.001}, "layers": ["layer3", "layer4"]}


@pytest.fixture
def examples(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((40, 30, 3), 200, dtype=np.uint8)).save(photo)
    gray = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    return [
        {  # 1 query + 3 results, all images: a (H, W) array, an (H, W, C) array and a path
            "query": gray,
            "results": [gray, np.zeros((28, 28, 3), dtype=np.uint8), str(photo)],
            "relevant": [True, False, True],
            "query_label": EVIL,
            "result_labels": ["shirt", "shoe", EVIL],
        },
        {  # text: no images
            "query": "a red dress",
            "results": ["red dress", "blue jeans"],
            "relevant": [True, False],
            "query_label": "text",
            "result_labels": ["dress", "jeans"],
        },
    ]


def _write(folder, **kw):
    args = {"history": HISTORY, "metrics": METRICS, "config": CONFIG} | kw
    path = write_report(folder, **args)
    return path, path.read_text(encoding="utf-8")


def test_report_with_everything(tmp_path, examples):
    path, page = _write(tmp_path / "out", examples=examples, title=f"run {EVIL}")

    assert path == tmp_path / "out" / "report.html"
    for value in ("0.5000", "0.7000", "0.3125", "0.2500"):  # before and after, formatted
        assert value in page
    assert re.search(r'class="num up">[^<]*\+0\.2000<', page)  # recall@1 went up
    assert re.search(r'class="num down">[^<]*-0\.0625<', page)  # map@r went down
    assert page.count("<img") == 2 + 4  # two plots + the four image items (text items are text)
    assert page.count('class="item hit"') == 3 and page.count('class="item miss"') == 2
    assert "blue jeans" in page and "train.learning_rate" in page and "[&quot;layer3&quot;, &quot;layer4&quot;]" in page
    assert "<script" not in page.lower()  # labels and title are escaped ...
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page  # ... and still shown
    assert sorted(p.name for p in path.parent.iterdir()) == ["loss.png", "metrics.png", "report.html"]


def test_pngs_are_valid_images(tmp_path):
    path, _ = _write(tmp_path)
    for name in ("loss.png", "metrics.png"):
        with Image.open(path.parent / name) as image:
            image.verify()
            assert image.format == "PNG" and image.width > 300


def test_without_examples_and_without_eval_metrics(tmp_path):
    history = [{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.7}]
    _, page = _write(tmp_path, history=history)
    assert page.count("<img") == 2
    assert "Example retrievals" not in page
    assert (tmp_path / "loss.png").is_file()


def test_without_history_or_metrics(tmp_path):
    (tmp_path / "loss.png").write_bytes(b"stale plot from an earlier report")
    _, page = _write(tmp_path, history=[], metrics={}, config={})
    assert "<img" not in page
    assert "No training history." in page and "No metrics recorded." in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_single_stage_has_no_change_column(tmp_path):
    _, page = _write(tmp_path, metrics={"after": {"recall@1": 0.7, "primary_metric": "recall@1"}})
    assert "0.7000" in page and "change" not in page


def test_model_selection_gets_its_own_section_not_a_metrics_column(tmp_path):
    selection = {
        "epoch": 2, "alpha": 1.0, "reason": "best validated candidate by seen/map@r", "selection_key": "seen/map@r",
        "guard_key": "new/map@r",
        "candidates": [
            {"epoch": 0, "alpha": 1.0, "score": 0.5, "guard": 0.9, "passed": True},
            {"epoch": 2, "alpha": 1.0, "score": 0.7, "guard": 0.89, "passed": True},
        ],
    }
    metrics = {"before": {"map@r": 0.5}, "after": {"map@r": 0.7}, "selection": selection}
    _, page = _write(tmp_path, history=[], metrics=metrics, config={})
    assert "Model selection" in page and "best validated candidate" in page and "epoch 2" in page
    assert "<th class=\"num\">selection</th>" not in page


def test_test_data_gets_its_own_table(tmp_path):
    metrics = {"before": {"map@r": 0.5}, "after": {"map@r": 0.7},
               "test": {"before": {"map@r": 0.41}, "after": {"map@r": 0.63}}}
    _, page = _write(tmp_path, history=[], metrics=metrics, config={})
    assert "Test data (never used for any choice)" in page and "0.6300" in page
