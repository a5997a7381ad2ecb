"""TextPreprocessing: string checks, batch tokenization, save/from_config round trip; sort_by_length."""

import numpy as np
import pytest
import torch

from finetuner.data.errors import DataError
from finetuner.data.preprocessing import Preprocessing, preprocessing_from_config
from finetuner.data.preprocessing.text import TextPreprocessing, sort_by_length
from tests.text.conftest import SENTENCES


def test_load_checks_strings(tokenizer):
    prep = TextPreprocessing(tokenizer)
    assert prep.load("a text", train=True) == "a text"
    assert prep.load(np.str_("numpy text"), train=False) == "numpy text"
    with pytest.raises(DataError, match="takes strings, got a int"):
        prep.load(3, train=True)


def test_collate_pads_to_the_longest_and_truncates(tokenizer):
    batch = TextPreprocessing(tokenizer, max_length=6).collate(["hello", "the cat sat on the mat"])
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"}
    assert batch["input_ids"].shape == (2, 6)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0], [1] * 6]
    assert batch["input_ids"][1, -1].item() == tokenizer.sep_token_id  # truncation keeps [SEP]
    assert isinstance(batch, dict) and all(isinstance(v, torch.Tensor) for v in batch.values())


def test_save_and_from_config_round_trip(tokenizer, tmp_path):
    prep = TextPreprocessing(tokenizer, max_length=12)
    assert isinstance(prep, Preprocessing)
    prep.save(tmp_path)
    config = prep.to_config()
    assert config == {"kind": "text", "max_length": 12}
    for loaded in (TextPreprocessing.from_config(config, tmp_path), preprocessing_from_config(config, tmp_path)):
        assert loaded.max_length == 12
        for key, value in prep.collate(SENTENCES).items():
            assert torch.equal(loaded.collate(SENTENCES)[key], value)


def test_missing_tokenizer_files_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        TextPreprocessing(tmp_path)
    with pytest.raises(ValueError, match="saved model folder"):
        TextPreprocessing.from_config({"kind": "text", "max_length": 8}, None)


def test_sort_by_length_and_restore_order():
    texts = ["bb", "a", "dddd", "ccc", "ee"]
    order = sort_by_length(texts)
    assert [texts[i] for i in order] == ["dddd", "ccc", "bb", "ee", "a"]
    encoded = np.array([len(texts[i]) for i in order])  # computed in sorted order
    restored = np.empty_like(encoded)
    restored[order] = encoded
    assert restored.tolist() == [len(t) for t in texts]
