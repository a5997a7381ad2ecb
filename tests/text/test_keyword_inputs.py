"""A tailored Hugging Face model is called the way the original was: ``emb(**batch)``."""

import pytest
import torch
from transformers import AutoModel

from finetuner.tailor import to_embedding_model


def test_tailored_hf_model_takes_keyword_inputs_like_the_original(hf_folder, batch):
    original = AutoModel.from_pretrained(hf_folder).eval()
    emb = to_embedding_model(original, example_input=dict(batch), output_dim=8).eval()
    with torch.no_grad():
        by_keywords = emb(**batch)
        by_dict = emb(dict(batch))
    assert by_keywords.shape == (len(batch["input_ids"]), 8)
    torch.testing.assert_close(by_keywords, by_dict)
    with torch.no_grad():
        torch.testing.assert_close(emb.features(**batch), emb.features(dict(batch)))


def test_mixing_positional_and_keyword_inputs_is_a_clear_error(hf_folder, batch):
    emb = to_embedding_model(AutoModel.from_pretrained(hf_folder), example_input=dict(batch), output_dim=8)
    with pytest.raises(TypeError, match="not both"):
        emb(dict(batch), **batch)
    with pytest.raises(TypeError, match="needs an input"):
        emb()
