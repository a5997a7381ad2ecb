"""`preflight`: one row per share of the labels, checked arguments, a verdict that follows the data, the report."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import finetuner
from finetuner.data import LabeledData, load_fashion_mnist
from finetuner.preflighting import CurvePoint, PreflightReport, check_seeds, check_shares, share_rows, verdict

SHARES = (0.25, 0.5, 1.0)
COMMON = {"input_size": (3, 32, 32), "val_split": 0.3, "num_workers": 0, "device": "cpu", "cache_engine": "torch",
          "verbose": False}  # fmt: skip
OPTIONS = {**COMMON, "pretrained": False, "epochs": 2, "batch_size": 16}  # a tiny random ViT, a quick head


def unmixing_data(classes: int = 6, per_class: int = 30) -> LabeledData:
    """Images whose class is a pattern in the red channel, under 3x stronger noise in green and blue: a linear map
    of the features recovers the class, the untuned features mostly see the noise."""
    rng = np.random.default_rng(0)
    signal = rng.normal(0, 1, (classes, 4, 4, 1)) * np.array([1.0, 0, 0])
    items = []
    for label in range(classes):
        for _ in range(per_class):
            small = 128 + 12 * (signal[label] + rng.normal(0, 3, (4, 4, 3)) * np.array([0.15, 1, 1]))
            items.append(np.clip(np.kron(small, np.ones((8, 8, 1))), 0, 255).astype(np.uint8))
    labels = [label for label in range(classes) for _ in range(per_class)]
    return LabeledData(items, labels, [f"c{label}" for label in range(classes)])


def linear_backbone() -> nn.Module:
    """A convolution over 8x8 blocks (linear: its features are a linear map of each block's colour), flattened."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 8, stride=8), nn.Flatten(), nn.Linear(128, 10)).eval()


class CountingConv(nn.Conv2d):
    """A convolution that counts the items it sees, on the class: `build_model` and the probe work on copies."""

    items = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CountingConv.items += len(x)
        return super().forward(x)


def counting_backbone() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(CountingConv(3, 8, 8, stride=8), nn.Flatten(), nn.Linear(128, 10)).eval()


@pytest.fixture(scope="module")
def six_classes():
    """180 Fashion-MNIST images, 30 of each of 6 classes (one is held out whole for validation)."""
    data = load_fashion_mnist("train")
    return data.subset([i for c in range(6) for i in [j for j, label in enumerate(data.labels) if label == c][:30]])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def report(six_classes, cache):
    return finetuner.preflight("timm:test_vit", six_classes, shares=SHARES, seeds=2, cache_dir=cache, **OPTIONS)


def test_one_row_per_share_smallest_first_on_seen_and_new_classes(report, six_classes):
    assert isinstance(report, PreflightReport)
    assert [point.share for point in report.curve] == list(SHARES)
    items = [point.items for point in report.curve]
    assert items == sorted(items) and len(set(items)) == len(items)
    assert items[-1] == len(six_classes) - 30 - round(0.3 * 30) * 5  # 100 %: every training item of 5 classes
    assert report.parts == ["seen/", "new/"] and len(report.held_out_classes) == 1
    keys = {"seen/recall@1", "seen/map@r", "new/recall@1", "new/map@r"}
    assert set(report.before) == keys
    for point in report.curve:
        assert set(point.gain) == set(point.spread) == set(point.class_error) == keys and len(point.runs) == 2
        for key in keys:  # the gain is the runs' mean minus the untuned figure
            assert point.gain[key] == pytest.approx(np.mean([r[key] for r in point.runs]) - report.before[key])
    table = str(report).splitlines()
    assert sum(line.startswith(("25%", "50%", "100%")) for line in table) == 3 and table[-1] == report.verdict
    assert report.timing["fit_estimate"] >= report.timing["backbone"] and report.timing["head_epoch"] > 0


def test_verdict_follows_the_labels(cache):
    data = unmixing_data()
    options = {**COMMON, "shares": (0.5, 1.0), "seeds": 1, "epochs": 60, "learning_rate": 1e-2, "batch_size": 16}
    found = finetuner.preflight(linear_backbone(), data, cache_dir=cache, **options)
    assert found.verdict.startswith("Tuning helps on this data"), found.verdict
    assert found.curve[-1].gain["seen/map@r"] > found.shuffled.gain["seen/map@r"]
    shuffled = np.random.default_rng(0).permutation(data.labels).tolist()
    random = finetuner.preflight(
        linear_backbone(), LabeledData(data.items, shuffled, data.classes), cache_dir=cache, **options
    )
    assert random.verdict.startswith("Tuning does not help on this data"), random.verdict


def test_json_plot_and_report_section(report, tmp_path):
    saved = json.loads(report.save(tmp_path / "preflight.json").read_text())
    assert [row["share"] for row in saved["curve"]] == list(SHARES) and saved["verdict"] == report.verdict
    figure = report.plot()
    assert len(figure.axes[0].lines) >= 4  # a line per part and metric (+ the zero line)
    page = report.write_report(tmp_path / "report").read_text()
    assert "Will tuning help? (pre-flight)" in page and report.verdict.split(":")[0] in page
    assert (tmp_path / "report" / "preflight.png").is_file()


@pytest.mark.parametrize(
    ("shares", "message"),
    [((), "non-empty"), ((0.0, 1.0), r"in \(0, 1\]"), ((0.5, 1.5), r"in \(0, 1\]"), ((0.5, 0.5), "repeats"),
     ("0.5", "non-empty"), ((True,), r"in \(0, 1\]")],
)  # fmt: skip
def test_bad_shares_are_refused_with_the_fix(shares, message):
    with pytest.raises(ValueError, match=message):
        check_shares(shares)
    with pytest.raises(ValueError, match=message):
        finetuner.preflight("timm:test_vit", "no-such-data", shares=shares)  # refused before any data is read


@pytest.mark.parametrize("seeds", [0, -1, 1.5, True, "3"])
def test_bad_seeds_are_refused(seeds):
    with pytest.raises(ValueError, match="seeds must be a whole number"):
        finetuner.preflight("timm:test_vit", "no-such-data", seeds=seeds)
    assert check_seeds(2) == [0, 1] and check_shares([1.0, 0.1]) == [0.1, 1.0]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"freeze": False}, "freeze must be True"), ({"output_dim": None}, "output_dim=128"),
     ({"cache": False}, "cache=True"), ({"task": "classification"}, "task must be 'embedding'")],
)  # fmt: skip
def test_settings_one_cached_pass_cannot_measure_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        finetuner.preflight("timm:test_vit", "no-such-data", **options)


def test_share_rows_take_a_share_of_every_class():
    labels = np.repeat([0, 1, 2], [10, 20, 3])
    rows = share_rows(labels, 0.5, seed=0)
    assert np.bincount(labels[rows]).tolist() == [5, 10, 2]  # at least 2 a class
    assert share_rows(labels, 1.0, seed=1).tolist() == list(range(33))
    assert share_rows(labels, 0.5, seed=1).tolist() != rows.tolist()


def point(share, gain, noise=0.005, new=0.0):
    keys = {"seen/map@r": gain, "new/map@r": new}
    return CurvePoint(share, 10, keys, dict.fromkeys(keys, noise), dict.fromkeys(keys, 0.0))


def test_verdict_sentences():
    rising = verdict([point(0.5, 0.02), point(1.0, 0.06)], "seen/map@r", "new/map@r")
    assert rising.startswith("Tuning helps on this data") and "more labels would likely help" in rising
    flat = verdict([point(0.5, 0.058), point(1.0, 0.06)], "seen/map@r", "new/map@r")
    assert "more labels are unlikely to help" in flat
    noisy = verdict([point(0.5, 0.02), point(1.0, 0.06, noise=0.08)], "seen/map@r", "new/map@r")
    assert noisy.startswith("Tuning does not help")  # the gain is within its spread
    hurts = verdict([point(1.0, 0.06, new=-0.05)], "seen/map@r", "new/map@r", guard_tolerance=0.01)
    assert "hurts new classes" in hurts and "give two shares" in hurts
    assert "no held-out classes" in verdict([point(1.0, 0.06)], "seen/map@r", None)


@pytest.mark.parametrize("probe", [False, True])
def test_the_backbone_runs_once_over_the_items(probe, tmp_path):
    """One pass over the items (validation included; with ``probe``, the probe's pass serves fit's layer too); the
    rest is inspection on batches of 2 (layer widths, hooks). A second pre-flight on the same data reads the cache."""
    data = unmixing_data()
    options = {**COMMON, "shares": (0.5, 1.0), "seeds": 2, "epochs": 1, "batch_size": 16, "probe": probe}
    seen = []
    for _ in range(2):
        CountingConv.items = 0
        report = finetuner.preflight(counting_backbone(), data, cache_dir=str(tmp_path), **options)
        seen.append(CountingConv.items)
    assert len(report.curve) == 2 and (report.leaderboard is not None) == probe
    assert len(data) <= seen[0] <= len(data) + 32, seen  # a second pass would be 2x the items
    assert seen[1] <= 32, seen  # no pass at all: the features are cached
