"""`finetuner.fit` end to end on tiny random models and a few Fashion-MNIST images."""

import json
import logging

import numpy as np
import pytest
import torch
from tiny_backend import TinyResNet

import finetuner
from finetuner.data import DataError
from finetuner.tailor import ClassificationHead, ResidualProjectionHead
from finetuner.training import Callback, EarlyStopping, WiSEFTCallback


class Snapshot(Callback):
    """Records the trained module's state when training starts."""

    def on_fit_start(self, trainer):
        self.start = {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_frozen_backbone_is_bit_identical_and_only_the_head_trains(small_data, eval_data, tmp_path):
    original = TinyResNet()
    before = {k: v.clone() for k, v in original.state_dict().items()}
    snapshot = Snapshot()
    run = finetuner.fit(
        original,
        small_data,
        eval_data,
        input_size=(3, 32, 32),
        freeze=True,
        output_dim=8,
        epochs=2,
        batch_size=16,
        cache=False,
        callbacks=[snapshot],
        cache_dir=tmp_path,
        select_best=False,  # the last epoch's head, which trained (selection may keep the untrained start)
    )
    backbone = run.model.backbone.state_dict()
    assert backbone, "the backbone kept no tensors"
    for name, tensor in backbone.items():  # weights and BatchNorm running statistics alike
        assert torch.equal(tensor, before[name.removeprefix("model.")]), name  # EarlyExit keeps it as .model
    assert any("running_mean" in name for name in backbone)
    head_changed = [
        name
        for name, tensor in run.model.state_dict().items()
        if name.startswith("head.") and tensor.is_floating_point() and not torch.equal(tensor, snapshot.start[name])
    ]
    assert head_changed
    assert isinstance(run.model.head, ResidualProjectionHead)  # the default head
    assert {"before", "after"} <= set(run.metrics)
    assert len(run.history) == 2 and all(np.isfinite(r["loss"]) for r in run.history)
    assert "eval/map@r" in run.history[-1]


def test_cached_and_uncached_runs_train_the_same_head(small_data, tmp_path):
    common = dict(
        model="test_cnn",
        train_data=small_data,
        pretrained=False,
        freeze=True,
        output_dim=8,
        epochs=2,
        batch_size=16,
        augment=False,
        seed=3,
        cache_dir=tmp_path,
        optimizer="sgd",
        learning_rate=0.1,
    )  # Adam would magnify float noise in near-zero gradients
    cached = finetuner.fit(cache=True, **common)
    uncached = finetuner.fit(cache=False, **common)
    for (name, a), b in zip(cached.model.head.state_dict().items(), uncached.model.head.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-4), name
    assert cached.history[-1]["loss"] == pytest.approx(uncached.history[-1]["loss"], rel=1e-4)


def test_second_fit_reuses_cached_features(small_data, tmp_path, caplog):
    common = dict(
        model="test_cnn",
        train_data=small_data,
        pretrained=False,
        freeze=True,
        epochs=1,
        batch_size=16,
        cache_dir=tmp_path,
    )
    finetuner.fit(output_dim=8, **common)
    with caplog.at_level(logging.INFO, logger="finetuner"):
        run = finetuner.fit(output_dim=4, loss="MultiSimilarityLoss", **common)
    assert "reusing cached features" in caplog.text
    assert run.encode(small_data.items[:3]).shape == (3, 4)


def test_save_load_encode_round_trip(small_data, tmp_path):
    run = finetuner.fit(
        "test_cnn",
        small_data,
        pretrained=False,
        freeze=["conv1", "bn1"],
        output_dim=8,
        epochs=1,
        batch_size=16,
        cache_dir=tmp_path,
    )
    folder = run.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = finetuner.load(folder)
    items = small_data.items[:10]
    np.testing.assert_allclose(loaded.encode(items), run.encode(items), atol=1e-5)
    norms = np.linalg.norm(loaded.encode(items), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_classification_beats_chance_and_predicts_class_names(easy_data, tmp_path):
    run = finetuner.fit(
        "test_cnn",
        easy_data,
        easy_data,
        task="classification",
        pretrained=False,
        epochs=12,
        batch_size=16,
        learning_rate=1e-2,
        cache_dir=tmp_path,
    )
    assert isinstance(run.model.head, ClassificationHead)
    assert run.metrics["after"]["accuracy"] > 0.6  # 4 classes: chance is 0.25
    predictions = run.predict(easy_data.items[:8])
    assert set(predictions) <= set(easy_data.classes)
    loaded = finetuner.load(run.save(tmp_path / "classifier"))
    assert loaded.predict(easy_data.items[:8]) == predictions


def test_torchvision_recipe_replaces_fc_with_linear_num_classes():
    model = finetuner.build_model(
        "resnet18", task="classification", classes=["a", "b", "c"], freeze=True, pretrained=False
    )
    assert isinstance(model.head, torch.nn.Linear) and (model.head.in_features, model.head.out_features) == (512, 3)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 512 * 3 + 3


def test_resume_continues_exactly_where_training_stopped(small_data, tmp_path):
    common = dict(
        model="test_cnn",
        train_data=small_data,
        pretrained=False,
        freeze=True,
        output_dim=8,
        batch_size=16,
        seed=1,
        cache_dir=tmp_path / "cache",
    )
    straight = finetuner.fit(epochs=3, **common)
    finetuner.fit(epochs=2, output_dir=tmp_path / "out", **common)
    checkpoints = tmp_path / "out" / "checkpoints"
    assert [p.name for p in sorted(checkpoints.iterdir())] == ["epoch-0001", "epoch-0002"]
    resumed = finetuner.fit(epochs=3, resume_from=checkpoints, **common)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(straight.model.head.state_dict().values(), resumed.model.head.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_output_dir_holds_model_checkpoints_and_report(small_data, eval_data, tmp_path):
    finetuner.fit(
        "test_cnn",
        small_data,
        eval_data,
        pretrained=False,
        freeze=True,
        output_dim=8,
        epochs=1,
        batch_size=16,
        output_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
    )
    assert (tmp_path / "out" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "out" / "report" / "report.html").is_file()


def test_wise_ft_alpha_zero_keeps_the_starting_weights(small_data, tmp_path):
    snapshot = Snapshot()
    run = finetuner.fit(
        "test_cnn",
        small_data,
        pretrained=False,
        freeze=True,
        output_dim=8,
        epochs=2,
        batch_size=16,
        callbacks=[snapshot, WiSEFTCallback(alpha=0.0)],
        cache_dir=tmp_path,
    )
    for name, tensor in run.model.head.state_dict().items():
        if tensor.is_floating_point() and "running" not in name:
            assert torch.equal(tensor, snapshot.start[name]), name


def test_early_stopping_ends_training(small_data, tmp_path):
    stopper = EarlyStopping(monitor="loss", mode="max", patience=1)  # the loss falls: "max" never improves
    run = finetuner.fit(
        "test_cnn",
        small_data,
        pretrained=False,
        freeze=True,
        output_dim=8,
        epochs=6,
        batch_size=16,
        learning_rate=1e-2,
        callbacks=[stopper],
        cache_dir=tmp_path,
    )
    assert len(run.history) < 6


def test_freeze_true_without_output_dim_is_a_clear_error(small_data):
    with pytest.raises(ValueError, match="would train nothing.*output_dim"):
        finetuner.fit("test_cnn", small_data, pretrained=False, freeze=True)


def test_unknown_model_lists_close_names(small_data):
    with pytest.raises(ValueError, match="resnet50"):
        finetuner.fit("resnet5O", small_data)


def test_missing_weights_say_how_to_provide_them(monkeypatch, tmp_path):
    monkeypatch.setenv("FINETUNER_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="pretrained=False") as error:
        finetuner.build_model("resnet18", output_dim=8)
    assert "resnet18-f37072fd.pth" in str(error.value)


def test_one_class_with_a_pair_loss_is_a_clear_error(small_data):
    one_class = small_data.subset([i for i, label in enumerate(small_data.labels) if label == 0])
    with pytest.raises(DataError, match="2 classes"):
        finetuner.fit("test_cnn", one_class, pretrained=False, output_dim=8, epochs=1)


def test_arcface_trains_its_own_weights(small_data, tmp_path):
    run = finetuner.fit(
        "test_cnn",
        small_data,
        pretrained=False,
        freeze=True,
        output_dim=8,
        epochs=2,
        batch_size=16,
        loss="ArcFaceLoss",
        cache_dir=tmp_path,
    )
    assert np.isfinite(run.history[-1]["loss"])


def test_evaluate_matches_metrics_of_the_run(small_data, eval_data, tmp_path):
    run = finetuner.fit(
        "test_cnn", small_data, eval_data, pretrained=False, output_dim=8, epochs=1, batch_size=16, cache_dir=tmp_path
    )
    metrics = finetuner.evaluate(run.model, eval_data)
    assert metrics["map@r"] == pytest.approx(run.metrics["after"]["map@r"], abs=1e-4)


def test_val_split_holds_out_that_fraction(small_data, tmp_path):
    class TrainingSize(Callback):
        def on_fit_start(self, trainer):
            self.items = len(trainer.batches.labels)  # cached features: one label per training item

    size = TrainingSize()
    run = finetuner.fit(
        "test_cnn",
        small_data,
        val_split=0.25,
        val_class_split=0.0,
        pretrained=False,
        freeze=True,
        output_dim=8,
        epochs=1,
        batch_size=16,
        callbacks=[size],
        cache_dir=tmp_path,
    )
    assert size.items == 36  # 75% of 48 items train, 12 are held out (no whole class held out)
    assert {"before", "after"} <= set(run.metrics)


def test_training_continues_from_a_saved_model_with_layers_frozen_by_their_original_names(small_data, tmp_path):
    first = finetuner.fit(
        "test_cnn", small_data, pretrained=False, output_dim=8, epochs=1, batch_size=16, cache_dir=tmp_path
    )
    folder = first.save(tmp_path / "model")
    again = finetuner.build_model(str(folder), freeze=["conv1", "layer1"])
    frozen = {name for name, p in again.named_parameters() if not p.requires_grad}
    assert frozen and all(".conv1." in f".{n}" or ".layer1." in f".{n}" for n in frozen)
    assert any(p.requires_grad for name, p in again.named_parameters() if "layer2" in name)


def test_freezing_every_layer_by_name_without_a_head_says_nothing_would_train(small_data):
    every_layer = ["conv1", "bn1", "layer1", "layer2"]
    with pytest.raises(ValueError, match="Nothing to train"):
        finetuner.fit("test_cnn", small_data, pretrained=False, freeze=every_layer, epochs=1, batch_size=16)


def test_report_examples_rank_before_and_after_and_the_card_names_the_data(small_data, tmp_path):
    """On cached features the report's example queries show their neighbours under the untuned features too, ranked
    by the same leave-one-out cosine; the card and the report's title name the data the user gave."""
    run = finetuner.fit(
        "test_cnn", small_data, pretrained=False, freeze=True, output_dim=8, epochs=1, cache_dir=tmp_path
    )
    assert run.examples
    example = run.examples[0]
    assert len(example["results_before"]) == len(example["results"]) == 5
    assert all(result is not example["query"] for result in example["results_before"])  # leave-one-out
    assert all(r == (label == example["query_label"]) for r, label in zip(
        example["relevant_before"], example["result_labels_before"]))
    assert run.model.card_data.train_data["source"] == "a LabeledData"
    named = finetuner.fit(
        "test_cnn", "fashion-mnist:test", pretrained=False, freeze=True, output_dim=8, epochs=1, cache_dir=tmp_path
    )
    assert named.model.card_data.train_data["source"] == "fashion-mnist:test"


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_fit_runs_the_frozen_backbone_in_the_engine_asked_for(small_data, tmp_path, engine):
    finetuner.fit(
        "test_cnn", small_data, pretrained=False, freeze=True, output_dim=8, epochs=1, cache_dir=tmp_path,
        cache_engine=engine,
    )
    graphs = list(tmp_path.rglob("*.onnx"))
    assert bool(graphs) == (engine == "onnxruntime")
    recorded = {json.loads(meta.read_text()).get("engine") for meta in tmp_path.rglob("meta.json")}
    assert recorded == {engine}


def test_epoch_lines_name_validation_and_the_parts_selection_uses(small_data, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="finetuner"):
        finetuner.fit(
            "test_cnn", small_data, pretrained=False, freeze=True, output_dim=8, epochs=1, cache_dir=tmp_path,
            val_split=0.25, val_class_split=0.25,
        )
    epoch = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 1/1"))
    assert "loss=" in epoch and "validation: recall@1=" in epoch
    assert "seen/map@r=" in epoch and "new/map@r=" in epoch and "eval/" not in epoch
    summary = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("model selection"))
    assert "need not lie between the parts" in summary
