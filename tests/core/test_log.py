"""Under torchrun only rank 0 tells the story: `MainProcessFilter` on the "finetuner" logger."""

import logging

import pytest

from finetuner.core.log import MainProcessFilter, log_from_main_process


@pytest.fixture
def logger():
    logger = logging.getLogger("finetuner.test-log")
    logger.filters.clear()
    log_from_main_process(logger)
    log_from_main_process(logger)  # once, however often it is called
    yield logger
    logger.filters.clear()


def test_other_ranks_drop_info_and_name_themselves_on_warnings(logger, caplog, monkeypatch):
    assert sum(isinstance(f, MainProcessFilter) for f in logger.filters) == 1
    monkeypatch.setenv("RANK", "3")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("epoch 1/15 loss=0.1")
        logger.warning("cache shard missing")
    assert [r.getMessage() for r in caplog.records] == ["rank 3: cache shard missing"]


@pytest.mark.parametrize("rank", [None, "0"])
def test_rank_zero_and_single_processes_log_everything(logger, caplog, monkeypatch, rank):
    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("epoch 1/15 loss=0.1")
    assert [r.getMessage() for r in caplog.records] == ["epoch 1/15 loss=0.1"]


def test_verbose_false_draws_no_progress_bars(capfd, tmp_path):
    import numpy as np

    import finetuner
    from finetuner.data import VectorData

    rng = np.random.default_rng(0)
    data = VectorData(rng.normal(size=(64, 8)).astype("float32"), [f"c{i % 4}" for i in range(64)])
    finetuner.fit(train_data=data, epochs=1, cache_dir=tmp_path, verbose=False)
    assert "epoch 1/1" not in capfd.readouterr().err
    finetuner.fit(train_data=data, epochs=1, cache_dir=tmp_path / "again", verbose=True)
    assert "epoch 1/1" in capfd.readouterr().err  # the bars (and the epoch lines) come back with verbose
