"""Checkpoints of frozen-backbone runs hold what trains, not copies of the backbone; ``save_total_limit``."""

import pytest
import torch
from safetensors.torch import load_file

import finetuner
from finetuner.training.checkpoint import load_checkpoint


def test_frozen_run_without_the_cache_checkpoints_only_what_trains_and_resumes_exactly(small_data, eval_data, tmp_path):
    common = dict(
        model="test_cnn", train_data=small_data, eval_data=eval_data, pretrained=False, freeze=True, output_dim=8,
        batch_size=16, cache=False, augment=False, seed=1,
    )  # fmt: skip
    straight = finetuner.fit(epochs=3, **common)
    finetuner.fit(epochs=2, output_dir=tmp_path / "out", save_total_limit=1, **common)
    checkpoints = tmp_path / "out" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["epoch-0002"]  # save_total_limit=1
    model = straight.model
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    saved = set(load_file(str(checkpoints / "epoch-0002" / "model.safetensors")))
    assert trained <= saved and not saved & frozen  # the head, the BatchNorm statistics, no frozen weight
    selection = dict(load_checkpoint(checkpoints)["callbacks"])["ModelSelection"]
    assert not set(selection["start"]) & frozen  # the selection's snapshots skip frozen weights too
    resumed = finetuner.fit(epochs=3, resume_from=checkpoints, **common)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name


def test_resuming_with_another_head_is_a_clear_error(small_data, tmp_path):
    common = dict(model="test_cnn", train_data=small_data, pretrained=False, freeze=True, batch_size=16, cache=False)
    finetuner.fit(epochs=1, output_dim=8, output_dir=tmp_path / "out", **common)
    with pytest.raises(ValueError, match="was written for another model"):
        finetuner.fit(epochs=2, output_dim=4, resume_from=tmp_path / "out" / "checkpoints", **common)


def test_save_total_limit_must_keep_a_checkpoint():
    with pytest.raises(ValueError, match="save_total_limit must be at least 1 checkpoint, got 0"):
        finetuner.config.FitConfig.from_options(save_total_limit=0)
