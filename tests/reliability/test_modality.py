"""Data a model would read wrongly is refused before training, with one line naming the data and the fix: a text
model given image files or empty texts (tuples, lists and tables alike), an image model given texts or missing
files."""

import pytest

import finetuner
from finetuner.data import DataError


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """The tiny BERT of tests/text as a local folder (tokenizer included)."""
    import torch
    from transformers import AutoModel, BertConfig, BertTokenizer

    words = "the a cat dog sat on mat hello world good bad".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz", *words]
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(dict.fromkeys(vocab))})
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("bert")
    AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def fit(model, data, **options):
    return finetuner.fit(model, data, epochs=1, batch_size=4, val_split=0, val_class_split=0, **options)


def test_a_text_model_on_an_image_folder_is_refused(text_model, files):
    images = files
    pairs = list(zip(images.items, [images.classes[label] for label in images.labels]))
    with pytest.raises(DataError, match="image files .* text model"):
        fit(text_model, pairs)


@pytest.mark.parametrize("empty", ["", "   ", "\n"])
def test_empty_texts_are_refused_in_tuples_as_in_tables(text_model, empty):
    import pandas as pd

    rows = [("the cat sat", "a"), ("hello world", "b"), (empty, "a"), ("good dog", "b"), ("bad mat", "a")]
    with pytest.raises(DataError, match=r"1 empty text \(row 2\)"):
        fit(text_model, rows)
    pairs = [("the cat", "the mat"), (empty, "hello world")]
    with pytest.raises(DataError, match="empty text"):
        fit(text_model, pairs, kind="pairs")
    with pytest.raises(DataError, match="empty"):
        fit(text_model, pd.DataFrame({"text": [r[0] for r in rows], "label": [r[1] for r in rows]}))


def test_an_image_model_given_texts_says_so(tmp_path):
    rows = [("a red shoe", "shoe"), ("a blue hat", "hat")] * 4
    with pytest.raises(DataError, match="holds texts .* image model"):
        fit("test_cnn", rows, pretrained=False, freeze=False, output_dim=8)


def test_missing_image_files_are_named_before_training(files, tmp_path):
    images = files
    rows = list(zip(images.items, images.labels))
    rows[3] = (str(tmp_path / "gone.png"), rows[3][1])
    with pytest.raises(DataError, match=r"1 of 16 image files do not exist \(first: .*gone\.png\)"):
        fit("test_cnn", rows, pretrained=False, freeze=False, output_dim=8)
