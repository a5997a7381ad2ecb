"""`sync_batchnorm`: which layers become SyncBatchNorm, that they turn back into the original layers with the trained
values, and the clear refusal on CPU."""

import pytest
import torch
from torch import nn

import finetuner
from finetuner.config import FitConfig
from finetuner.tailor import freeze
from finetuner.training import distributed


def network() -> nn.Sequential:
    layers = (nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(6), nn.BatchNorm1d(6))
    return nn.Sequential(*layers)


def test_trainable_batchnorm_becomes_sync_and_frozen_batchnorm_stays():
    net = network()
    freeze(net, ["0", "1"])  # the first conv and its BatchNorm: statistics fixed
    converted = distributed.convert_sync_batchnorm(net)
    assert converted is net  # in place
    assert type(net[1]) is nn.BatchNorm2d  # frozen: left alone, still locked in eval mode
    assert isinstance(net[5], nn.SyncBatchNorm)
    net.train()
    before = net[1].running_mean.clone()
    net(torch.randn(8, 3, 7, 7))
    assert torch.equal(net[1].running_mean, before)


def test_reverting_restores_the_original_layers_with_their_trained_values():
    net = network()
    net(torch.randn(4, 3, 8, 8))  # materialise the lazy layer
    original = {k: v.clone() for k, v in net.state_dict().items()}
    distributed.convert_sync_batchnorm(net)
    with torch.no_grad():
        net[5].weight.add_(1.0)
        net[5].running_mean.add_(2.0)  # what training would change
    distributed.revert_sync_batchnorm(net)
    assert [type(m) for m in (net[1], net[5])] == [nn.BatchNorm2d, nn.BatchNorm1d]
    assert torch.equal(net[5].weight, original["5.weight"] + 1.0)
    assert torch.equal(net[5].running_mean, original["5.running_mean"] + 2.0)
    assert net[5].weight.requires_grad
    assert net.state_dict().keys() == original.keys()


def test_sync_batchnorm_is_refused_on_cpu_under_torchrun(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(ValueError, match="sync_batchnorm=True needs GPUs"):
        distributed.wrap_model(network(), torch.device("cpu"), sync_batchnorm=True)
    # every rank training on all batches (cached features): nothing to wrap, nothing to synchronise
    net = network()
    assert distributed.wrap_model(net, torch.device("cpu"), sharded=False, sync_batchnorm=True) is net


def test_sync_batchnorm_is_a_fit_option_and_a_no_op_in_one_process(small_data):
    assert FitConfig.from_options(sync_batchnorm=True).training.sync_batchnorm is True
    run = finetuner.fit(
        "test_cnn", small_data, pretrained=False, output_dim=8, epochs=1, batch_size=16, num_workers=0,
        sync_batchnorm=True, val_split=0, val_class_split=0,
    )  # fmt: skip
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in run.model.modules())
