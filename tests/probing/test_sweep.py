"""`sweep`: Optuna on cached features, pruned per epoch, deterministic with a seed."""

import pytest

from finetuner.probing import Recipe, sweep

from .conftest import IMAGE

SPACE = {"learning_rate": (1e-3, 3e-2), "loss": ["TripletMarginLoss", "MultiSimilarityLoss"], "epochs": (1, 3)}


def run_sweep(model, data, cache_dir, **kwargs):
    options = {"n_trials": 7, "space": SPACE, "recipe": Recipe(batch_size=16, device="cpu"), "num_workers": 0}
    options |= {"val_split": 0.2, "val_class_split": 0.25}  # validation large enough for scores to spread
    return sweep(model, data, input_size=IMAGE, cache_dir=cache_dir, **options | kwargs)


def test_same_seed_same_trials_and_best(cnn, small_data, cache_dir):
    first = run_sweep(cnn, small_data, cache_dir, seed=3)
    second = run_sweep(cnn, small_data, cache_dir, seed=3)
    assert [(t.params, t.score, t.state) for t in first.trials] == [(t.params, t.score, t.state) for t in second.trials]
    assert first.best.params == second.best.params and first.best.score == second.best.score
    other = run_sweep(cnn, small_data, cache_dir, seed=4)
    assert [t.params for t in other.trials] != [t.params for t in first.trials]


def test_the_median_pruner_stops_weak_trials(cnn, small_data, cache_dir):
    result = run_sweep(cnn, small_data, cache_dir, seed=3, n_trials=10)
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert pruned and len(pruned) < len(result.trials)
    assert result.best.state == "complete"


def test_trials_report_every_epoch_and_fit_options(cnn, small_data, cache_dir):
    result = run_sweep(cnn, small_data, cache_dir, layer="stage1", head="linear")
    assert result.layer == "stage1" and len(result.trials) == 7
    for trial, frozen in zip(result.trials, result.study.trials):
        assert set(trial.params) == {"head", "output_dim", *SPACE}
        steps = sorted(frozen.intermediate_values)
        assert steps == list(range(1, len(steps) + 1))  # one report per epoch, pruned trials stop early
        assert len(steps) == trial.params["epochs"] or trial.state == "pruned"
        assert 1e-3 <= trial.params["learning_rate"] <= 3e-2 and trial.params["loss"] in SPACE["loss"]
    best = result.best
    assert best.state == "complete" and best.score == max(t.score for t in result.trials if t.state == "complete")
    assert result.fit_options() == {"layer_name": "stage1", "freeze": True, **best.params}
    assert result.fit_options()["head"] == "linear" and str(result).splitlines()[-1].startswith("best: trial")


def test_default_layer_and_bad_spaces(cnn, small_data, cache_dir):
    result = run_sweep(cnn, small_data, cache_dir, n_trials=1, space={"output_dim": [8]})
    assert result.layer == "avgpool" and result.layer_name is None and result.best.params["output_dim"] == 8
    with pytest.raises(ValueError, match="Unknown sweep settings"):
        run_sweep(cnn, small_data, cache_dir, space={"lr": (1e-3, 1e-2)})
    with pytest.raises(ValueError, match="list of choices"):
        run_sweep(cnn, small_data, cache_dir, space={"epochs": 3})
