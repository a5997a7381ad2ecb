"""Session fixtures for the tailor tests."""

import pytest
import torch

from .helpers import BUILDERS, build


@pytest.fixture(scope="session")
def zoo():
    """``zoo(name) -> (model, kwargs)``: the shared model (do not modify it) and the input kwargs for tailor."""

    def get(name: str):
        model = build(name)
        size = BUILDERS[name][1]
        if size is None:
            ids = torch.randint(1, 50, (2, 7), generator=torch.Generator().manual_seed(1))
            return model, {"example_input": {"input_ids": ids, "attention_mask": torch.ones_like(ids)}}
        return model, {"input_size": size}

    return get


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads, and on a shared machine two threads contend badly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
