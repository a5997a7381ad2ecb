"""16-bit images (PNG/TIFF ``I;16``, uint16 arrays) are scaled to 8 bits, not clipped at 255."""

import numpy as np
import pytest
import torch
from PIL import Image

from finetuner.data import ImagePreprocessing

RAW = ImagePreprocessing(input_size=(1, 32, 32), mean=(0.0,), std=(1.0,), crop_pct=1.0, augment=None)


def gradient16() -> np.ndarray:
    """A 32×32 ramp over the whole 16-bit range."""
    return np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_a_16_bit_image_file_keeps_its_range(tmp_path, suffix):
    path = tmp_path / f"ramp.{suffix}"
    Image.fromarray(gradient16()).save(path)
    assert Image.open(path).mode.startswith("I")
    pixels = RAW.load(path, train=False)
    assert (pixels >= 0.999).float().mean() < 0.01  # was 97% white: PIL's conversion clipped at 255
    expected = torch.from_numpy(gradient16() / 65535.0).float()
    assert torch.allclose(pixels[0], expected, atol=1 / 255)


def test_a_16_bit_file_loads_as_rgb_too(tmp_path):
    path = tmp_path / "ramp.png"
    Image.fromarray(gradient16()).save(path)
    rgb = ImagePreprocessing(input_size=(3, 32, 32), mean=(0, 0, 0), std=(1, 1, 1), crop_pct=1.0, augment=None)
    pixels = rgb.load(path, train=False)
    assert torch.equal(pixels[0], pixels[2]) and torch.allclose(pixels[0], RAW.load(path, train=False)[0])


def test_uint16_arrays_are_scaled_like_16_bit_files():
    assert torch.allclose(RAW.load(gradient16(), train=False), RAW.load(gradient16()[:, :, None], train=False))
    assert RAW.load(gradient16(), train=False).max() == 1.0


def test_a_32_bit_integer_image_within_8_bits_is_left_as_is(tmp_path):
    path = tmp_path / "small.tif"
    Image.fromarray(np.full((32, 32), 128, np.int32)).save(path)
    assert Image.open(path).mode == "I"
    assert torch.allclose(RAW.load(path, train=False), torch.full((1, 32, 32), 128 / 255))


def test_a_float_tiff_in_0_to_1_is_scaled_not_read_as_black(tmp_path):
    path = tmp_path / "ramp.tif"
    ramp = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    Image.fromarray(ramp, mode="F").save(path)
    assert Image.open(path).mode == "F"
    pixels = RAW.load(path, train=False)[0]
    assert torch.allclose(pixels, torch.from_numpy(ramp), atol=1 / 255)  # was all zeros


def test_a_float_tiff_outside_0_to_255_is_refused_naming_the_file(tmp_path):
    from finetuner.data import DataError

    path = tmp_path / "hdr.tif"
    Image.fromarray(np.full((32, 32), 300.0, np.float32), mode="F").save(path)
    with pytest.raises(DataError, match=r"hdr\.tif.*0\.\.1 or 0\.\.255"):
        RAW.load(path, train=False)


def test_cmyk_and_transparent_palette_images_decode_to_their_colours(tmp_path):
    rgb = ImagePreprocessing(input_size=(3, 32, 32), mean=(0, 0, 0), std=(1, 1, 1), crop_pct=1.0, augment=None)
    Image.new("CMYK", (32, 32), (0, 255, 0, 0)).save(tmp_path / "magenta.jpg")
    assert torch.allclose(rgb.load(tmp_path / "magenta.jpg", train=False).mean((1, 2)), torch.tensor([1.0, 0, 1]),
                          atol=0.02)
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0  # every pixel transparent: white, not the palette's black
    palette.save(tmp_path / "clear.png", transparency=0)
    assert rgb.load(tmp_path / "clear.png", train=False).min() == 1.0
