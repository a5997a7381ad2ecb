"""Tiny text fixtures: a word-piece tokenizer built in memory and a random 3-block BERT saved as a local folder."""

import copy
import json
import string

import pytest

WORDS = "the a an cat cats dog dogs sat on mat hello world is was good bad movie film great awful sun moon".split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SENTENCES = ["the cat sat on the mat", "hello world", "a good movie, a great film!", "dogs"]


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import BertTokenizer

    pieces = list(string.ascii_lowercase) + ["##" + c for c in string.ascii_lowercase] + list(".,!?'")
    vocab = list(dict.fromkeys(SPECIALS + pieces + WORDS))  # "a" is a piece and a word: ids must stay dense
    return BertTokenizer(vocab={token: i for i, token in enumerate(vocab)})


@pytest.fixture(scope="session")
def tiny_config(tokenizer):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


@pytest.fixture(scope="session")
def hf_folder(tmp_path_factory, tokenizer, tiny_config):
    """A plain Hugging Face folder: config.json, model.safetensors and tokenizer files."""
    import torch
    from transformers import AutoModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_bert")
    AutoModel.from_config(tiny_config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def st_folder(tmp_path_factory, hf_folder):
    """The same model as a sentence-transformers folder: CLS pooling, max_seq_length 16, Normalize."""
    folder = tmp_path_factory.mktemp("tiny_st")
    for file in hf_folder.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 16}))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    return folder


@pytest.fixture(scope="session")
def _backbone(hf_folder):
    from finetuner.models.hf_text import build_hf_text

    return build_hf_text(hf_folder)


@pytest.fixture
def backbone(_backbone):
    """A fresh copy of the tiny text backbone (mean pooling)."""
    return copy.deepcopy(_backbone)


@pytest.fixture
def batch(backbone):
    return backbone.preprocessing.collate(SENTENCES)
