"""The README.md model card every saved folder gets: what the model knows, what card_data adds, how to load it."""

import json
from pathlib import Path

import pytest

import finetuner
from finetuner.export import ModelCardData

CARD = ModelCardData(
    base_model="test_cnn",
    weights="random (tests)",
    loss="TripletMarginLoss",
    loss_options={"margin": 0.2},
    miner="MultiSimilarityMiner",
    training={"epochs": 10, "batch_size": 64, "learning_rate": 0.001},
    train_data={"items": 2000, "classes": 10, "source": "fashion-mnist"},
    eval_data={"items": 1000, "classes": 10},
    metrics={"before": {"recall@1": 0.772, "map@r": 0.3897}, "after": {"recall@1": 0.794, "map@r": 0.6625}},
)


def test_saved_folder_has_a_full_card_that_survives_reload(tmp_path):
    model = finetuner.build_model("test_cnn", pretrained=False, output_dim=16, freeze=True, head="projection")
    model.card_data = CARD
    model.save(tmp_path / "model")
    card = (tmp_path / "model" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: finetuner\n")
    for expected in (
        "base_model: \"test_cnn\"",
        "| weights | random (tests) |",
        "| layer cut | stops after `avgpool` |",
        "| frozen | the whole backbone |",
        "`ProjectionHead(in_features=16, out_features=16, num_layers=3",
        "| loss | `TripletMarginLoss` (margin: 0.2) |",
        "| miner | `MultiSimilarityMiner` |",
        "| epochs | 10 |",
        "| training data | items: 2000, classes: 10, source: fashion-mnist |",
        "| recall@1 | 0.7720 | 0.7940 |",
        "| map@r | 0.3897 | 0.6625 |",
        'finetuner.load("path/to/this/folder")',
        'ort.InferenceSession("model.onnx")',
        "### Head formula",
        "| torch |",
    ):
        assert expected in card, expected
    assert "sentence_transformers" not in card and "timm.create_model" not in card  # test_cnn exports to neither
    reloaded = finetuner.load(tmp_path / "model")
    assert reloaded.card_data == ModelCardData(**{**CARD.to_dict(), "frozen": "the whole backbone"})
    reloaded.save(tmp_path / "again")
    assert (tmp_path / "again" / "README.md").read_text() == card


def test_without_card_data_the_model_still_describes_itself(hf_folder, tmp_path):
    model = finetuner.build_model(str(hf_folder), freeze="first:2")
    model.save(tmp_path / "text")
    card = (tmp_path / "text" / "README.md").read_text()
    assert "No training details were recorded" in card and "## Metrics" not in card
    assert "| token pooling | mean |" in card and "truncated to" in card
    frozen = next(line for line in card.splitlines() if line.startswith("| frozen |"))
    layers = "(`transformer.embeddings`, `transformer.encoder.layer.0`, `transformer.encoder.layer.1`)"
    assert frozen.startswith("| frozen | 37 of 53 backbone parameter tensors " + layers), frozen
    assert "SentenceTransformer(" in card and "| transformers |" in card
    assert json.loads((tmp_path / "text" / "config.json").read_text())["card_data"]["frozen"] in frozen


def test_card_data_as_a_dict_and_unknown_fields(tmp_path):
    model = finetuner.build_model("test_cnn", pretrained=False)
    model.card_data = {"loss": "NTXentLoss", "train_data": {"items": 5}}
    model.save(tmp_path / "m")
    assert "| loss | `NTXentLoss` |" in (tmp_path / "m" / "README.md").read_text()
    model.card_data = {"los": "NTXentLoss"}
    with pytest.raises(ValueError, match=r"Unknown model card fields \['los'\]"):
        model.save(tmp_path / "m2")


def test_fit_fills_the_card_with_the_run(small_data, eval_data, tmp_path):
    import finetuner

    run = finetuner.fit("test_cnn", small_data, pretrained=False, freeze=True, output_dim=8, epochs=1, batch_size=16,
                        test_data=eval_data, cache_dir=tmp_path / "cache")
    card = run.model.card_data
    assert card.loss == "TripletMarginLoss" and card.base_model == "test_cnn" and card.frozen is True
    assert 0 < card.train_data["items"] < len(small_data)  # validation was held out of training
    assert card.metrics["after"] == run.metrics["test"]["after"]  # the card reports the untouched test data
    text = (run.save(tmp_path / "model") / "README.md").read_text()
    assert "TripletMarginLoss" in text and "test_cnn" in text


def test_card_names_test_data_as_such_and_leaves_per_class_rows_to_the_report(tmp_path):
    import dataclasses

    model = finetuner.build_model("test_cnn", pretrained=False, output_dim=16, freeze=True, head="projection")
    per_class = {"seen/class/Bag/recall@1": 0.5}
    model.card_data = dataclasses.replace(
        CARD,
        eval_data={"items": 1000, "classes": 10, "scored_as": "test data"},
        metrics={k: {**v, **per_class} for k, v in CARD.metrics.items()},
    )
    model.save(tmp_path / "model")
    card = (tmp_path / "model" / "README.md").read_text()
    assert "## Metrics (on the test data, never used for any choice)" in card
    assert "| test data | items: 1000, classes: 10 |" in card
    assert "evaluation data" not in card and "class/Bag" not in card


def test_example_items_are_spread_absolute_and_saved(tmp_path, image_items):
    from finetuner.card import example_items

    texts = [f"text {i}" for i in range(20)]
    assert example_items(texts, n=3) == ["text 0", "text 10", "text 19"]
    kept = example_items([image_items[0], image_items[2], image_items[1]])  # the array is skipped
    assert kept == [str(Path(image_items[0]).resolve()), str(Path(image_items[1]).resolve())]
    model = finetuner.build_model("test_cnn", pretrained=False)
    model.card_data.example_items = kept
    model.save(tmp_path / "m")
    assert finetuner.load(tmp_path / "m").card_data.example_items == kept
