"""write_report: the summary card first, per-class chart, examples before and after, folded details, embedded
images, escaping, and the PNG files next to it."""

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
CARD = {"base_model": "resnet18", "train_data": {"source": "shoes", "items": 900, "classes": 12}}
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


CURVES = ["curves_loss.png", "curves_map_at_r.png", "curves_recall_at_1.png"]


def test_report_with_everything(tmp_path, examples):
    path, page = _write(tmp_path / "out", examples=examples, title=f"run {EVIL}")

    assert path == tmp_path / "out" / "report.html"
    for value in ("0.5000", "0.7000", "0.3125", "0.2500"):  # before and after in the folded table
        assert value in page
    assert re.search(r'class="num up">[^<]*\+0\.2000<', page)  # recall@1 went up
    assert re.search(r'class="num down">[^<]*-0\.0625<', page)  # map@r went down
    assert page.count("<img") == 3 + 4  # three training charts + the four image items (text items are text)
    assert page.count('class="item hit"') == 3 and page.count('class="item miss"') == 2
    assert "blue jeans" in page and "train.learning_rate" in page and "[&quot;layer3&quot;, &quot;layer4&quot;]" in page
    assert "<script" not in page.lower()  # labels and title are escaped ...
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page  # ... and still shown
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([*CURVES, "report.html"])


def test_pngs_are_valid_images(run_page):
    for name in ["curves_loss.png", "curves_map_at_r.png", "per_class.png"]:
        with Image.open(run_page[0] / name) as image:
            image.verify()
            assert image.format == "PNG" and image.width > 300


def test_without_examples_and_without_eval_metrics(tmp_path):
    history = [{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.7}]
    _, page = _write(tmp_path, history=history)
    assert page.count("<img") == 1
    assert "Example retrievals" not in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves_loss.png", "report.html"]


def test_without_history_or_metrics(tmp_path):
    (tmp_path / "curves_loss.png").write_bytes(b"stale plot from an earlier report")
    (tmp_path / "per_class.png").write_bytes(b"stale plot from an earlier report")
    _, page = _write(tmp_path, history=[], metrics={}, config={})
    assert "<img" not in page
    assert "No training history." in page and "no evaluation data" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_single_stage_has_no_change_column(tmp_path):
    _, page = _write(tmp_path, metrics={"after": {"recall@1": 0.7, "primary_metric": "recall@1"}})
    assert "0.7000" in page and "change" not in page


def test_model_selection_gets_its_own_section_not_a_metrics_column(tmp_path):
    metrics = {"before": {"map@r": 0.5}, "after": {"map@r": 0.7}, "selection": SELECTION}
    _, page = _write(tmp_path, history=[], metrics=metrics, config={})
    assert "Model selection" in page and "best validated candidate" in page and "epoch 2" in page
    assert "<th class=\"num\">selection</th>" not in page


# a run as fit returns it: validation and test data, seen/new parts, per-class figures, selection, probe
SELECTION = {
    "epoch": 2, "alpha": 1.0, "reason": "best validated candidate by seen/map@r, guard new/map@r >= 0.3000",
    "selection_key": "seen/map@r", "guard_key": "new/map@r",
    "candidates": [
        {"epoch": 0, "alpha": 1.0, "score": 0.5, "guard": 0.31, "passed": True},
        {"epoch": 2, "alpha": 1.0, "score": 0.7, "guard": 0.33, "passed": True},
    ],
}  # fmt: skip


def _stage(whole, seen, new, classes):
    values = {"recall@1": whole[0], "map@r": whole[1], "mrr": 0.5}
    values |= {"seen/recall@1": seen[0], "seen/map@r": seen[1], "new/recall@1": new[0], "new/map@r": new[1]}
    for name, (part, value) in classes.items():
        values[f"{part}/class/{name}/recall@1"] = value
        values[f"{part}/class/{name}/map@r"] = value
    return values


VALIDATION = {
    "before": _stage((0.41, 0.21), (0.42, 0.22), (0.40, 0.20), {}),
    "after": _stage((0.51, 0.31), (0.52, 0.32), (0.50, 0.30), {}),
}
TEST_BEFORE = _stage((0.612, 0.301), (0.623, 0.322), (0.555, 0.211),
                     {"Bag": ("seen", 0.30), "T-shirt/top": ("seen", 0.40), "Shirt": ("new", 0.25)})  # fmt: skip
TEST_AFTER = _stage((0.734, 0.402), (0.801, 0.488), (0.566, 0.233),
                    {"Bag": ("seen", 0.50), "T-shirt/top": ("seen", 0.35), "Shirt": ("new", 0.27)})  # fmt: skip
PROBE = {"primary_metric": "map@r", "rows": [{"layer": "layer3", "head": "residual", "output_dim": 64, "score": 0.4}]}
RUN_METRICS = VALIDATION | {
    "test": {"before": TEST_BEFORE, "after": TEST_AFTER}, "selection": SELECTION, "probe": PROBE,
}  # fmt: skip
RUN_CARD = {
    "base_model": "efficientnet_lite0", "frozen": True, "loss": "TripletMarginLoss",
    "train_data": {"source": "fashion-mnist", "items": 1800, "classes": 8, "kind": "labeled"},
    "eval_data": {"items": 1000, "classes": 10, "kind": "labeled"},
}  # fmt: skip
RUN_CONFIG = {"model": {"head": "residual", "output_dim": 128, "layer_name": "blocks.5", "freeze": True}}
RUN_HISTORY = [
    {"epoch": e, "loss": 1 / e, "eval/map@r": 0.2 + e / 20, "eval/seen/map@r": 0.2 + e / 15, "eval/new/map@r": 0.3}
    for e in (1, 2, 3)
]


def _run_report(tmp_path, metrics=RUN_METRICS, **kw):
    args = {"history": RUN_HISTORY, "metrics": metrics, "config": RUN_CONFIG, "card": RUN_CARD} | kw
    path = write_report(tmp_path, **args)
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def run_page(tmp_path_factory):
    """The report of the whole fabricated run, written once for the tests that only read it."""
    folder = tmp_path_factory.mktemp("run")
    return folder, _run_report(folder)


def _sections(page):
    return re.findall(r'<section[^>]*>\s*<h2>([^<]*)</h2>', page)


def _summary(page):
    return re.search(r'<section class="summary[^"]*" id="summary">.*?</section>', page, re.S).group(0)


def test_summary_card_is_first_and_shows_the_test_figures(run_page):
    page = run_page[1]
    heads = _sections(page)
    assert heads[0] == "Summary"
    assert heads.index("Per class, before → after") < heads.index("Layer and head probe") < heads.index("Training")
    assert heads[-1] == "Details"
    card = _summary(page)
    tiles = re.findall(r'<div class="what">([^<]*)</div><div class="figure">([\d.]+) &rarr; <b>([\d.]+)</b>', card)
    shown = {what.replace(" &middot; ", " / "): (float(b), float(a)) for what, b, a in tiles}
    for prefix, part in (("", "all classes"), ("seen/", "seen classes"), ("new/", "new classes")):
        for metric, name in (("recall@1", "R@1"), ("map@r", "MAP@R")):
            want = (TEST_BEFORE[prefix + metric], TEST_AFTER[prefix + metric])  # test data, not validation
            assert shown[f"{name} / {part}"] == pytest.approx(want, abs=5e-4)
    assert len(shown) == 6 and "on test data" in card


def test_summary_card_says_what_was_trained_and_what_selection_kept(run_page):
    card = _summary(run_page[1])
    for text in ("efficientnet_lite0", "fashion-mnist: 1,800 items, 8 classes", "residual → 128 dims",
                 "frozen (only the head trained)", "TripletMarginLoss", "1,000 items, 10 classes"):  # fmt: skip
        assert text in card, text
    assert "Kept epoch 2: best validated candidate by seen/map@r, guard new/map@r &gt;= 0.3000." in card
    assert re.search(r"Held-out classes</b>[^<]*: Shirt</li>", card)  # the new part's classes


def test_warning_when_anything_got_worse_and_not_when_all_improved(run_page, tmp_path):
    improved = _summary(run_page[1])
    assert '<section class="summary" id="summary">' in improved and "Worse" not in improved

    after = TEST_AFTER | {"new/map@r": TEST_BEFORE["new/map@r"] - 0.01}  # only the new classes' MAP@R drops
    metrics = RUN_METRICS | {"test": {"before": TEST_BEFORE, "after": after}}
    worse = _summary(_run_report(tmp_path, metrics=metrics, history=[]))
    assert '<section class="summary worse" id="summary">' in worse
    assert "Worse after training on test data: new classes MAP@R 0.211 → 0.201" in worse
    assert worse.count('class="tile down"') == 1


def test_validation_figures_without_test_data(tmp_path):
    metrics = {k: v for k, v in RUN_METRICS.items() if k != "test"}
    card = _summary(_run_report(tmp_path, metrics=metrics, history=[]))
    assert "on validation data" in card and "0.410 &rarr; <b>0.510</b>" in card


def test_per_class_chart_and_which_classes_lost(run_page):
    folder, page = run_page
    section = page[page.index("<h2>Per class, before → after</h2>") :]
    assert re.search(r'<img src="data:image/png;base64,[^"]+" alt="per-class before and after"', section)
    assert "2 of 3 classes gained; lost: T-shirt/top (-0.050)." in section
    assert (folder / "per_class.png").is_file()


def test_examples_before_and_after_side_by_side(tmp_path, examples):
    both = dict(examples[1], results_before=["blue jeans", "red dress", "green hat"],
                result_labels_before=["jeans", "dress", "hat"], relevant_before=[False, True, False])  # fmt: skip
    page = _run_report(tmp_path, examples=[both, examples[0]], history=[])
    blocks = page.split('<div class="example">')[1:]
    assert re.findall(r'<div class="stage">(\w+)</div>', blocks[0]) == ["before", "after"]
    before, after = blocks[0].split('<div class="stage">after</div>')
    assert before.count('class="item hit"') == 1 and before.count('class="item miss"') == 2 and "green hat" in before
    assert after.count('class="item hit"') == 1 and after.count('class="item miss"') == 1
    assert '<div class="stage">' not in blocks[1]  # an example with only its after results has one row


def test_metric_tables_and_settings_are_folded_at_the_end(run_page):
    page = run_page[1]
    details = page[page.index("<h2>Details</h2>") :]
    assert page.count("<th>metric</th>") == 2 == details.count("<details>\n<summary>All metrics on")
    assert "<th>metric</th>" not in page[: page.index("<h2>Details</h2>")]
    assert re.search(r"<details>\s*<summary>Settings</summary>\s*<table>", details)
    assert "test/class" not in page and "seen/class/T-shirt/top/map@r" in details  # per-class rows are in the table


def test_title_names_the_model_and_the_data(run_page, tmp_path):
    page = run_page[1]
    assert "<title>efficientnet_lite0 on fashion-mnist</title>" in page
    assert "<h1>efficientnet_lite0 on fashion-mnist</h1>" in page
    unnamed = RUN_CARD | {"train_data": {"items": 900, "classes": 12}}
    page = _run_report(tmp_path, card=unnamed, history=[])
    assert "<title>efficientnet_lite0 on 900 items, 12 classes</title>" in page


def test_page_is_self_contained(tmp_path, examples):
    page = _run_report(tmp_path, examples=examples, history=RUN_HISTORY[:1])
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<(script|link|iframe|object)\b", page, re.I) and "url(" not in page
    assert not re.search(r'href="(?!#)', page)


def test_training_curves_name_seen_and_new_classes():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from finetuner.report import training_curves

    panels = dict(training_curves(RUN_HISTORY, kept_epoch=2))
    renderer = FigureCanvasAgg(panels["map@r"]).get_renderer()
    panels["map@r"].draw(renderer)  # lays the figure out
    assert list(panels) == ["loss", "map@r"]
    ax = panels["map@r"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["all classes", "seen classes", "new classes", "kept: epoch 2"]
    legend_box, axes_box = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend_box.y1 <= axes_box.y0  # the legend sits under the axes, never on the lines
