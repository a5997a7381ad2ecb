import numpy as np
import pytest
import torch

import finetuner
from finetuner.data import VectorPairs


@pytest.fixture(scope="module")
def adapter(distorted_pairs, tmp_path_factory):
    queries, documents = distorted_pairs
    run = finetuner.fit(train_data=VectorPairs(queries[:300], documents[:300]), adapter="query", head="linear",
                        epochs=2, learning_rate=1e-2, cache_dir=tmp_path_factory.mktemp("cache"), verbose=False)
    return run.model


def _unit(vectors):
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_arrays_hold_the_linear_adapter(adapter, distorted_pairs, tmp_path):
    from safetensors.numpy import load_file

    queries = distorted_pairs[0][:20]
    folder = adapter.export(tmp_path / "arrays", format="arrays")
    weight, bias = np.load(folder / "weight.npy"), np.load(folder / "bias.npy")
    assert weight.shape == (16, 16) and not np.allclose(weight, np.eye(16))  # trained, not the identity start
    assert np.allclose(_unit(queries @ weight.T + bias), adapter.encode_query(queries), atol=1e-5)
    stored = load_file(str(folder / "adapter.safetensors"))
    assert np.array_equal(stored["weight"], weight) and np.array_equal(stored["bias"], bias)


def test_onnx_takes_vectors_and_gives_the_query_vectors(adapter, distorted_pairs, tmp_path):
    import onnxruntime

    queries = distorted_pairs[0][:7]
    session = onnxruntime.InferenceSession(str(adapter.export(tmp_path / "adapter.onnx")))
    (out,) = session.run(None, {session.get_inputs()[0].name: queries})
    assert np.allclose(out, adapter.encode_query(queries), atol=1e-5)


def test_arrays_refuse_what_is_not_linear_or_not_vectors(tmp_path):
    model = finetuner.build_model("vectors:8", output_dim=8)  # residual head: an MLP branch
    with torch.no_grad():
        model.head.residual[-1].weight.normal_()
    with pytest.raises(ValueError, match="not a linear map"):
        model.export(tmp_path / "a", format="arrays")
    with pytest.raises(ValueError, match="adapter on given vectors"):
        finetuner.build_model("test_cnn", output_dim=4, pretrained=False).export(tmp_path / "b", format="arrays")
