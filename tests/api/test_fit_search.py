"""fit's recipe search on the feature cache (search="auto"): trials on fit's validation, the best recipe trained."""

import logging

import pytest

import finetuner
from finetuner._fit.search import LEARNING_RATES, search_space
from finetuner.config import FitConfig
from finetuner.training import TrainConfig

OPTIONS = {"pretrained": False, "freeze": True, "output_dim": 8, "epochs": 2, "batch_size": 16, "num_workers": 0}


def test_search_runs_trials_on_validation_and_trains_the_best(small_data, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="finetuner"):
        run = finetuner.fit("test_cnn", small_data, cache_dir=tmp_path, search="auto", search_trials=3, **OPTIONS)
    searched = run.metrics["selection"]["search"]
    trials = searched["trials"]
    assert 1 <= len(trials) <= 3
    assert trials[0]["params"] == {"learning_rate": 1e-4, "objective": "triplet", "keep_neighbourhood": 0.0}
    assert len({tuple(sorted(t["params"].items())) for t in trials}) == len(trials)  # no trial twice
    scored = [t for t in trials if t["score"] is not None]
    if scored:
        assert trials[searched["chosen"]]["score"] == max(t["score"] for t in scored)
    assert run.config["training"]["learning_rate"] == searched["params"]["learning_rate"]
    assert run.config["training"]["keep_neighbourhood"] == searched["params"]["keep_neighbourhood"]
    assert "recipe search: kept trial" in caplog.text
    assert "searched trials" in run.model.card_data.training["recipe"]


def test_search_none_the_default_trains_the_recipe_as_given(small_data, tmp_path):
    run = finetuner.fit("test_cnn", small_data, cache_dir=tmp_path, **OPTIONS)
    assert "search" not in run.metrics["selection"]
    assert run.config["training"]["learning_rate"] == 1e-4


def test_settings_the_user_gave_are_not_searched():
    assert set(search_space(TrainConfig())) == {"learning_rate", "objective", "keep_neighbourhood"}
    assert search_space(TrainConfig())["learning_rate"] == LEARNING_RATES
    given = TrainConfig(learning_rate=1e-3, loss="NTXentLoss", keep_neighbourhood=2.0)
    assert search_space(given) == {}


def test_keep_neighbourhood_trains_with_the_regulariser(small_data, tmp_path):
    run = finetuner.fit("test_cnn", small_data, cache_dir=tmp_path, keep_neighbourhood=5.0, search=None, **OPTIONS)
    assert run.model.card_data is not None and run.config["training"]["keep_neighbourhood"] == 5.0


@pytest.mark.parametrize("options", [{"search": "grid"}, {"search_trials": 0}, {"search_budget": -1.0}])
def test_bad_search_options_are_clear_errors(options):
    with pytest.raises(ValueError, match="search"):
        FitConfig.from_options(**options)


def test_search_does_not_run_on_raw_items(small_data, tmp_path):
    run = finetuner.fit("test_cnn", small_data, cache_dir=tmp_path, search="auto", cache=False, **OPTIONS)
    assert "search" not in run.metrics["selection"]
