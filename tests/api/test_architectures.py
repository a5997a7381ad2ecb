"""build_model → save → load on several backbone families: the reloaded model gives the same embeddings."""

import numpy as np
import pytest

import finetuner


@pytest.mark.parametrize(
    ("name", "chopped_as"),
    [("test_vit", "EarlyExit"), ("resnet18", "Sequential"), ("mobilenet_v3_small", "EarlyExit"),
     ("timm:convnext_atto", "Sequential")],
)
def test_save_load_round_trip_per_architecture(name, chopped_as, tmp_path, eval_data):
    model = finetuner.build_model(name, pretrained=False, output_dim=8)
    assert type(model.backbone).__name__ == chopped_as
    loaded = finetuner.load(model.save(tmp_path / "model"))
    assert loaded.spec["layer_name"] == model.spec["layer_name"]
    items = eval_data.items[:3]
    np.testing.assert_array_equal(loaded.encode(items), model.encode(items))
