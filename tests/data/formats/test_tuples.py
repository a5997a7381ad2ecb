"""Lists of tuples: the kind is honoured when given, inferred only when unambiguous."""

import numpy as np
import pytest
import torch

from finetuner.data import DataError, LabeledData, PairData, load_data

QUESTIONS = [
    ("how do I reset it?", "Hold the power button for five seconds."),
    ("it will not restart", "Hold the power button for five seconds."),
    ("what does it cost?", "It costs ten euros in every shop."),
]


def test_items_with_string_or_int_labels():
    data = load_data([("a.jpg", "dog"), ("b.jpg", "cat"), ("c.jpg", "dog")])
    assert (data.items, data.labels, data.classes) == (["a.jpg", "b.jpg", "c.jpg"], [1, 0, 1], ["cat", "dog"])
    arrays = [np.zeros((4, 4), np.uint8)] * 3
    data = load_data(list(zip(arrays, [7, 3, np.int64(7)])))
    assert (data.labels, data.classes) == ([1, 0, 1], ["3", "7"])
    assert load_data([("a", torch.tensor(1)), ("b", torch.tensor(0))]).labels == [1, 0]
    with pytest.raises(DataError, match="mix strings and numbers"):
        load_data([("a", 1), ("b", "x")])


def test_unique_second_texts_are_documents():
    pairs = load_data([("how to reset", "hold the button"), ("price", "10 EUR")])
    assert isinstance(pairs, PairData) and pairs.documents == ["hold the button", "10 EUR"]
    assert isinstance(load_data([("great", "positive"), ("awful", "negative")], kind="labeled"), LabeledData)


def test_repeated_documents_are_ambiguous_until_kind_says_pairs():
    with pytest.raises(DataError, match=r"ambiguous: second values repeat .* appears 2 times.*kind='labeled' or"):
        load_data(QUESTIONS)
    pairs = load_data(QUESTIONS, kind="pairs")  # what fit asks for with MultipleNegativesRankingLoss
    assert isinstance(pairs, PairData) and pairs.queries[1] == "it will not restart"
    short_labels = load_data([("great", "positive"), ("awful", "negative"), ("fine", "positive")])
    assert isinstance(short_labels, LabeledData) and short_labels.classes == ["negative", "positive"]
    assert isinstance(load_data([("great", "positive"), ("fine", "positive")], kind="pairs"), PairData)


def test_images_as_second_values_are_documents():
    image = np.zeros((4, 4, 3), np.uint8)
    pairs = load_data([("a red shoe", image), ("a blue hat", image)])
    assert isinstance(pairs, PairData) and pairs.documents[0] is image


def test_triples_are_scored_pairs_or_triplets():
    scored = load_data([("q1", "d1", 1), ("q2", "d2", 0.5)])
    assert scored.scores == [1.0, 0.5] and scored.negatives is None
    triplets = load_data([("q1", "d1", "n1"), ("q2", "d2", "n2")], kind="triplets")
    assert triplets.negatives == ["n1", "n2"] and triplets.scores is None
    with pytest.raises(DataError, match="kind='scored_pairs' was asked for, but the list holds pairs without scores"):
        load_data([("q1", "d1", "n1")], kind="scored_pairs")
    with pytest.raises(DataError, match="kind='labeled' was asked for, but the list holds pairs"):
        load_data([("q1", "d1", 1.0)], kind="labeled")


def test_kind_that_contradicts_the_tuples_raises():
    with pytest.raises(DataError, match="kind='pairs' was asked for, but the second values are integer class labels"):
        load_data([("a", 0), ("b", 1)], kind="pairs")
    with pytest.raises(DataError, match="kind='triplets' was asked for, but the list holds pairs without hard neg"):
        load_data([("q", "d")], kind="triplets")


def test_malformed_lists_raise():
    with pytest.raises(DataError, match="empty"):
        load_data([])
    with pytest.raises(DataError, match=r"every list entry must be a tuple of 2 values.*found entries of \[2, 3\]"):
        load_data([("a", "b"), ("a", "b", "c")])
    with pytest.raises(DataError, match=r"found entries of \[None\]"):
        load_data(["just", "texts"])
