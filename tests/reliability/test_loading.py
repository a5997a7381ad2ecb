"""Damaged, foreign or mismatched files where a saved model or a checkpoint is expected: each gives one line
that names the file and what is wrong, and never advises unsafe loading (``weights_only=False``)."""

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

import finetuner
from finetuner.training.checkpoint import load_checkpoint


def assert_clear(error: pytest.ExceptionInfo, *names: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    assert "weights_only" not in message and "Caught" not in message, message
    for name in names:
        assert name in message, (name, message)


def edit_config(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


class Pickled:
    """Not a tensor: torch.save pickles it as an object."""


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# (case, damage, expected exception, words the message must hold)
MODEL_CASES = [
    ("truncated weights", lambda f: truncate(f / "model.safetensors"), ValueError, ["model.safetensors", "truncated"]),
    ("empty weights", lambda f: (f / "model.safetensors").write_bytes(b""), ValueError, ["model.safetensors", "empty"]),
    (
        "pickle as weights",
        lambda f: torch.save({"w": Pickled()}, f / "model.safetensors"),
        ValueError,
        ["model.safetensors", "torch.save"],
    ),
    ("missing weights", lambda f: (f / "model.safetensors").unlink(), FileNotFoundError, ["model.safetensors"]),
    ("config not JSON", lambda f: (f / "config.json").write_text("{'spec': "), ValueError, ["config.json", "damaged"]),
    ("config binary", lambda f: (f / "config.json").write_bytes(b"\xff\xfe\x00garbage"), ValueError, ["config.json"]),
    ("config a list", lambda f: (f / "config.json").write_text("[1, 2]"), ValueError, ["config.json", "list"]),
    ("config of another tool", lambda f: (f / "config.json").write_text('{"model_type": "bert"}'), ValueError,
     ["config.json", "format"]),
    ("config lacks a key", lambda f: edit_config(f, lambda c: c.pop("head")), ValueError, ["config.json", "head"]),
    (
        "head size edited",
        lambda f: edit_config(f, lambda c: c["head"].update(out_features=16)),
        ValueError,
        ["model.safetensors", "config.json", "shapes"],
    ),
    (
        "unknown head option",
        lambda f: edit_config(f, lambda c: c["head"].update(colour="red")),
        ValueError,
        ["config.json", "colour"],
    ),
    (
        "unknown backbone",
        lambda f: edit_config(f, lambda c: c["spec"]["backbone"].update(name="no_such_net")),
        ValueError,
        ["config.json", "rebuilt"],
    ),
    (
        "bad preprocessing",
        lambda f: edit_config(f, lambda c: c["preprocessing"].update(input_size=[5, 32, 32])),
        ValueError,
        ["config.json", "input_size"],
    ),
    ("missing config", lambda f: (f / "config.json").unlink(), FileNotFoundError, ["config.json"]),
]


@pytest.mark.parametrize("case, damage, expected, words", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_a_damaged_saved_model_fails_with_one_clear_line(saved_model, tmp_path, case, damage, expected, words):
    folder = tmp_path / "model"
    shutil.copytree(saved_model, folder)
    damage(folder)
    with pytest.raises(expected) as error:
        finetuner.load(folder)
    assert_clear(error, *words)


def test_weights_of_another_model_are_named_with_the_difference(saved_model, tmp_path):
    other = tmp_path / "other"
    finetuner.build_model("test_cnn", pretrained=False, output_dim=16).save(other)
    folder = tmp_path / "model"
    shutil.copytree(saved_model, folder)
    shutil.copy(other / "model.safetensors", folder / "model.safetensors")
    with pytest.raises(ValueError) as error:
        finetuner.load(folder)
    assert_clear(error, "model.safetensors", "(8,", "(16,", "different saves")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    """``checkpoints/epoch-0001``, ``epoch-0002`` of a 2-epoch cached run (test_cnn, 8-d head)."""
    import numpy as np

    from finetuner.data import LabeledData

    rng = np.random.default_rng(0)
    items = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(16)]
    data = LabeledData(items, [i % 4 for i in range(16)], list("abcd"))
    out = tmp_path_factory.mktemp("run")
    fit_kwargs = dict(pretrained=False, freeze=True, output_dim=8, batch_size=8, cache_dir=out / "cache")
    finetuner.fit("test_cnn", data, epochs=2, output_dir=out, **fit_kwargs)
    return out / "checkpoints"


def newest(folder: Path) -> Path:
    return sorted(folder.glob("epoch-*"))[-1]


CHECKPOINT_CASES = [
    ("missing folder", lambda c: shutil.rmtree(c), FileNotFoundError, ["does not exist"]),
    ("empty folder", lambda c: [shutil.rmtree(p) for p in c.glob("epoch-*")], FileNotFoundError, ["No training"]),
    ("truncated state", lambda c: truncate(newest(c) / "trainer_state.pt"), ValueError, ["trainer_state.pt", "damage"]),
    (
        "pickled objects",
        lambda c: torch.save({"epoch": Pickled()}, newest(c) / "trainer_state.pt"),
        ValueError,
        ["trainer_state.pt", "Python objects"],
    ),
    (
        "plain pickle",
        lambda c: (newest(c) / "trainer_state.pt").write_bytes(pickle.dumps({"epoch": 1}, protocol=2)),
        ValueError,
        ["trainer_state.pt", "pickle"],
    ),
    ("garbage state", lambda c: (newest(c) / "trainer_state.pt").write_bytes(b"garbage"), ValueError,
     ["trainer_state.pt"]),
    ("state of something else", lambda c: torch.save({"step": 3}, newest(c) / "trainer_state.pt"), ValueError,
     ["trainer_state.pt", "lacks"]),
    ("truncated weights", lambda c: truncate(newest(c) / "model.safetensors"), ValueError, ["model.safetensors"]),
    ("damaged history", lambda c: (newest(c) / "history.json").write_text("[{"), ValueError, ["history.json"]),
    ("missing history", lambda c: (newest(c) / "history.json").unlink(), FileNotFoundError, ["history.json"]),
]


@pytest.mark.parametrize("case, damage, expected, words", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_a_damaged_checkpoint_fails_with_one_clear_line(checkpoints, tmp_path, case, damage, expected, words):
    folder = tmp_path / "checkpoints"
    shutil.copytree(checkpoints, folder)
    damage(folder)
    with pytest.raises(expected) as error:
        load_checkpoint(folder)
    assert_clear(error, *words)


def test_a_saved_model_given_as_resume_from_says_to_pass_it_as_the_model(saved_model):
    with pytest.raises(FileNotFoundError) as error:
        load_checkpoint(saved_model)
    assert_clear(error, str(saved_model), "as the model")


def resume(checkpoints: Path, tmp_path: Path, **overrides):
    import numpy as np

    from finetuner.data import LabeledData

    rng = np.random.default_rng(0)
    items = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(16)]
    data = LabeledData(items, [i % 4 for i in range(16)], list("abcd"))
    options = dict(pretrained=False, freeze=True, output_dim=8, batch_size=8, epochs=3, cache_dir=tmp_path / "cache")
    return finetuner.fit("test_cnn", data, resume_from=checkpoints, **{**options, **overrides})


def test_resuming_another_models_checkpoint_names_the_difference(checkpoints, tmp_path):
    with pytest.raises(ValueError) as error:
        resume(checkpoints, tmp_path, output_dim=16)
    assert_clear(error, "epoch-0002", "another model", "(16,", "(8,")


def test_resuming_past_the_requested_epochs_says_so(checkpoints, tmp_path):
    with pytest.raises(ValueError) as error:
        resume(checkpoints, tmp_path, epochs=1)
    assert_clear(error, "epoch 2", "epochs=1")


def test_resuming_with_another_optimizer_setup_names_the_checkpoint(checkpoints, tmp_path):
    with pytest.raises(ValueError) as error:
        resume(checkpoints, tmp_path, loss="ArcFaceLoss")  # its own weights: a second optimizer
    assert_clear(error, "epoch-0002", "loss")


def test_an_intact_checkpoint_still_resumes(checkpoints, tmp_path):
    run = resume(checkpoints, tmp_path)
    assert [record["epoch"] for record in run.history] == [1, 2, 3]


def test_a_weights_file_holding_objects_is_refused_without_advising_unsafe_loading(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2)}, "extra": Pickled()}, path)
    with pytest.raises(ValueError) as error:
        finetuner.build_model("resnet18", weights=str(path))
    assert_clear(error, "resnet.pth", "Python objects")
