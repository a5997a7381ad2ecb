"""`finetuner.fit` on (image, caption) pairs with a tiny random CLIP: CLIPLoss, encode both modalities, reload."""

import numpy as np
import pytest

import finetuner
from finetuner.data import PairData, load_fashion_mnist
from finetuner.data.preprocessing.image_text import ImageTextPreprocessing, is_text
from finetuner.models.clip import TINY_CONFIG, build_clip


@pytest.fixture(scope="module")
def pairs():
    data = load_fashion_mnist("train").subset(range(0, 2000, 50))
    captions = [f"a photo of a {data.classes[label].lower()} number {i}" for i, label in enumerate(data.labels)]
    return PairData(list(data.items), captions)


def test_clip_trains_on_image_caption_pairs_and_reloads(pairs, tmp_path):
    run = finetuner.fit(build_clip(TINY_CONFIG), pairs, pairs, epochs=2, batch_size=8, learning_rate=1e-3)
    assert all(np.isfinite(record["loss"]) for record in run.history)
    assert {"recall@1", "mrr"} <= set(run.metrics["after"])
    images, texts = pairs.queries[:4], pairs.documents[:4]
    image_vectors, text_vectors = run.encode(images), run.encode(texts)
    assert image_vectors.shape == text_vectors.shape == (4, TINY_CONFIG["embed_dim"])
    loaded = finetuner.load(run.save(tmp_path / "clip"))
    assert isinstance(loaded.preprocessing, ImageTextPreprocessing)
    np.testing.assert_allclose(loaded.encode(images), image_vectors, atol=1e-5)
    np.testing.assert_allclose(loaded.encode(texts), text_vectors, atol=1e-5)


def test_a_batch_mixing_images_and_texts_is_refused(pairs):
    model = finetuner.build_model(build_clip(TINY_CONFIG))
    with pytest.raises(ValueError, match="separate calls"):
        model.encode([pairs.queries[0], pairs.documents[0]])


def test_text_or_image_detection(tmp_path):
    image = tmp_path / "cat.png"
    image.write_bytes(b"")
    assert is_text("a cat on a mat") and not is_text(str(image)) and not is_text(np.zeros((4, 4), np.uint8))
