import json

import numpy as np
import pytest
import torch
from PIL import Image

from finetuner.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataError,
    ImagePreprocessing,
    Preprocessing,
    preprocessing_from_config,
)
from finetuner.data.preprocessing.image_text import ImageTextPreprocessing

from .conftest import write_image

SMALL = (3, 16, 16)


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("input_size", [(3, 16, 16), (3, 12, 20), (1, 16, 16)])
def test_configured_shape_for_every_item_type(tmp_path, input_size, train):
    prep = ImagePreprocessing(input_size=input_size, mean=(0.5,) * input_size[0], std=(0.5,) * input_size[0])
    path = write_image(tmp_path / "x.jpg", size=(40, 30))
    items = [
        path,
        str(path),
        Image.new("RGB", (30, 40)),
        np.zeros((28, 28), dtype=np.uint8),
        np.zeros((28, 30, 1), dtype=np.uint8),
        np.zeros((28, 30, 3), dtype=np.uint8),
        np.zeros((9, 9, 4), dtype=np.uint8),
        torch.zeros(3, 20, 20, dtype=torch.uint8),
    ]
    for item in items:
        out = prep.load(item, train=train)
        assert out.shape == input_size and out.dtype == torch.float32 and type(out) is torch.Tensor


def test_grayscale_and_rgba_files_become_rgb(image_folder):
    prep = ImagePreprocessing(input_size=SMALL, mean=(0, 0, 0), std=(1, 1, 1), augment=None)
    gray = prep.load(image_folder / "cat" / "b.png", train=False)
    assert gray.shape == SMALL and torch.allclose(gray, torch.full(SMALL, 128 / 255), atol=1e-3)
    transparent = prep.load(image_folder / "cat" / "c.PNG", train=False)
    assert torch.allclose(transparent, torch.ones(SMALL), atol=1e-3)  # fully transparent: white


def test_mean_and_std_applied_to_a_constant_colour():
    prep = ImagePreprocessing(input_size=SMALL)
    out = prep.load(Image.new("RGB", (20, 20), (255, 128, 0)), train=False)
    expected = (torch.tensor([255, 128, 0]) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out, expected[:, None, None].expand(SMALL), atol=1e-4)


def test_eval_is_deterministic_and_train_augments():
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    prep = ImagePreprocessing(input_size=SMALL)
    assert torch.equal(prep.load(image, train=False), prep.load(image, train=False))
    views = [prep.load(image, train=True) for _ in range(4)]
    assert any(not torch.equal(views[0], view) for view in views[1:])
    plain = ImagePreprocessing(input_size=SMALL, augment=None)
    assert torch.equal(plain.load(image, train=True), plain.load(image, train=False))


def test_eval_center_crops_after_resizing_by_crop_pct():
    # A white 16x16 square centred in a black 32x32 image: the whole view averages 0.25, while
    # crop_pct=0.5 at 16x16 resizes to 32 and keeps only the white middle.
    image = np.zeros((32, 32), dtype=np.uint8)
    image[8:24, 8:24] = 255
    identity = {"mean": (0, 0, 0), "std": (1, 1, 1), "interpolation": "nearest", "augment": None}
    whole = ImagePreprocessing(input_size=(3, 32, 32), crop_pct=1.0, **identity).load(image, train=False)
    middle = ImagePreprocessing(input_size=(3, 16, 16), crop_pct=0.5, **identity).load(image, train=False)
    assert whole.mean() == pytest.approx(0.25)
    assert middle.min() == 1.0


def test_jpeg_draft_decoding_matches_full_decoding(tmp_path):
    ramp = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    path = tmp_path / "large.jpg"
    Image.fromarray(ramp).convert("RGB").save(path, quality=95)
    prep = ImagePreprocessing(input_size=SMALL)
    with Image.open(path) as full:
        reference = prep.load(full.convert("RGB"), train=False)
    assert (prep.load(path, train=False) - reference).abs().max() < 0.1


def test_preprocessed_float_tensor_is_returned_as_is():
    tensor = torch.randn(3, 7, 7)
    assert ImagePreprocessing(input_size=SMALL).load(tensor, train=True) is tensor


def test_collate_stacks_and_rejects_mixed_shapes():
    prep = ImagePreprocessing(input_size=SMALL)
    assert prep.collate([torch.zeros(SMALL)] * 3).shape == (3, *SMALL)
    with pytest.raises(DataError, match="different shapes"):
        prep.collate([torch.zeros(3, 4, 4), torch.zeros(3, 5, 5)])


def test_corrupt_missing_and_non_image_files_name_the_path(tmp_path, corrupt_jpg):
    text_file = tmp_path / "notes.png"
    text_file.write_text("hello")
    truncated = write_image(tmp_path / "cut.png", size=(64, 64))
    truncated.write_bytes(truncated.read_bytes()[:60])
    prep = ImagePreprocessing(input_size=SMALL)
    for path in (corrupt_jpg, tmp_path / "missing.jpg", text_file, truncated):
        with pytest.raises(DataError, match="Remove or replace") as info:
            prep.load(path, train=False)
        assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "item", [np.zeros((4, 4), dtype=np.float32), np.zeros((4, 4, 2), dtype=np.uint8), torch.zeros(2, 2, 2, 2), 3]
)
def test_unsupported_items_raise_data_error(item):
    with pytest.raises(DataError):
        ImagePreprocessing(input_size=SMALL).load(item, train=False)


def test_config_round_trip_through_json():
    prep = ImagePreprocessing(
        input_size=(1, 20, 24), mean=(0.5,), std=(0.25,), interpolation="bilinear", crop_pct=0.9, augment=None
    )
    config = json.loads(json.dumps(prep.to_config()))
    assert config["kind"] == "image"
    assert ImagePreprocessing.from_config(config) == prep
    assert preprocessing_from_config(config) == prep
    with pytest.raises(ValueError, match="Unknown preprocessing kind .audio.. Known: .image."):
        preprocessing_from_config({"kind": "audio"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_size": (4, 8, 8)},
        {"input_size": (8, 8)},
        {"crop_pct": 0},
        {"augment": "heavy"},
        {"interpolation": "cubic"},
        {"mean": (0.5,)},
        {"std": (1, 0, 1)},
    ],
)
def test_invalid_settings_raise(kwargs):
    with pytest.raises(ValueError):
        ImagePreprocessing(**kwargs)


def test_from_timm_config():
    import timm

    cfg = timm.create_model("resnet18", pretrained=False).pretrained_cfg
    prep = ImagePreprocessing.from_timm(cfg, augment=None)
    assert prep.input_size == tuple(cfg["input_size"]) and prep.crop_pct == cfg["crop_pct"]
    assert prep.interpolation == cfg["interpolation"] and prep.augment is None
    assert ImagePreprocessing.from_timm({"input_size": (3, 8, 8), "interpolation": "random"}).interpolation == "bicubic"


def test_image_preprocessings_follow_the_protocol_and_round_trip_through_save(tmp_path):
    image = ImagePreprocessing(input_size=SMALL, augment=None)
    for prep in (image, ImageTextPreprocessing(image, context_length=8)):
        assert isinstance(prep, Preprocessing)
        folder = tmp_path / prep.kind
        folder.mkdir()
        prep.save(folder)
        assert list(folder.iterdir()) == []  # to_config holds everything
        config = json.loads(json.dumps(prep.to_config()))
        assert config["kind"] == prep.kind and preprocessing_from_config(config, folder) == prep


def test_an_object_missing_part_of_the_protocol_is_not_a_preprocessing():
    class NoSave:
        kind = "image"

        def load(self, item, train):
            return item

        def collate(self, samples):
            return torch.stack(samples)

        def to_config(self):
            return {"kind": self.kind}

    assert not isinstance(NoSave(), Preprocessing)
    NoSave.save = lambda self, folder: None
    assert isinstance(NoSave(), Preprocessing)
