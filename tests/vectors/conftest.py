"""Synthetic vectors: labelled clusters, and query/document pairs whose queries are a fixed linear distortion of
their documents (so a query-side linear map can undo it)."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 16))
    labels = rng.integers(0, 8, 480)
    vectors = (centres[labels] + rng.normal(size=(480, 16)) * 1.2).astype(np.float32)
    return vectors, [f"class {label}" for label in labels]


@pytest.fixture(scope="session")
def distorted_pairs():
    rng = np.random.default_rng(1)
    documents = rng.normal(size=(800, 16)).astype(np.float32)
    distortion = np.eye(16) + rng.normal(size=(16, 16)) * 0.6
    queries = (documents @ distortion + rng.normal(size=documents.shape) * 0.2).astype(np.float32)
    return queries, documents
