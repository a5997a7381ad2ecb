"""`finetuner export MODEL PATH --format ...`, run in-process."""

import numpy as np
from typer.testing import CliRunner

from finetuner.cli import app
from finetuner.export import OnnxEncoder

runner = CliRunner()


def test_export_formats_from_the_command_line(image_model, image_items, tmp_path):
    image_model.save(tmp_path / "model")
    result = runner.invoke(app, ["export", str(tmp_path / "model"), str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'm.onnx'}" in result.output
    expected = image_model.encode(image_items, normalize=False, num_workers=0)
    result = runner.invoke(
        app, ["export", str(tmp_path / "model"), str(tmp_path / "raw.onnx"), "--format", "onnx", "--no-normalize"]
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(OnnxEncoder(tmp_path / "raw.onnx").encode(image_items), expected, atol=1e-4)


def test_export_errors_are_one_line(image_model, tmp_path):
    image_model.save(tmp_path / "model")
    result = runner.invoke(app, ["export", str(tmp_path / "model"), str(tmp_path / "x"), "--format", "timm"])
    assert result.exit_code == 1 and "comes from 'test'" in result.output
    result = runner.invoke(app, ["export", str(tmp_path / "model"), str(tmp_path / "x"), "--format", "tflite"])
    assert result.exit_code == 1 and "Unknown export format 'tflite'" in result.output
    result = runner.invoke(
        app, ["export", str(tmp_path / "model"), str(tmp_path / "x"), "--format", "timm", "--no-normalize"]
    )
    assert result.exit_code == 1 and "--no-normalize applies to the onnx formats only" in result.output


def test_check_items_from_the_command_line(image_model, image_items, tmp_path):
    image_model.save(tmp_path / "model")
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.jpg"):
        (images / name).write_bytes(open([i for i in image_items[:2] if str(i).endswith(name)][0], "rb").read())
    command = ["export", str(tmp_path / "model"), str(tmp_path / "m.onnx"), "--format", "onnx-int8"]
    result = runner.invoke(app, [*command, "--check-items", str(images)])
    assert result.exit_code == 0, result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, [*command, "--overwrite", "--check-items", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "folder without images" in result.output
