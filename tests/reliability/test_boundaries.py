"""Nothing silently ignored or overwritten: input_size for named models, model options, resume with another loss,
exports onto existing paths, torchrun's environment, and the CLI's one-line errors."""

import pytest
from typer.testing import CliRunner

import finetuner
from finetuner.cli import app
from finetuner.core import distributed
from finetuner.models import build_backbone

runner = CliRunner()


def test_input_size_of_a_named_model_is_applied_or_refused():
    resized = build_backbone("test_cnn", pretrained=False, input_size=(3, 48, 48))
    assert resized.preprocessing.input_size == (3, 48, 48) and tuple(resized.example_input.shape) == (2, 3, 48, 48)
    with pytest.raises(ValueError, match=r"input_size=\(3, 30, 30\) does not fit timm:test_vit.*img_size"):
        build_backbone("timm:test_vit", pretrained=False, input_size=(3, 30, 30))


def test_an_unknown_model_option_names_the_close_match():
    with pytest.raises(ValueError, match="takes no option 'img_sise'. Did you mean img_size?"):
        build_backbone("timm:test_vit", pretrained=False, img_sise=32)
    with pytest.raises(ValueError, match="model_options: test_cnn .* takes no option 'bogus'"):
        finetuner.build_model("test_cnn", pretrained=False, model_options={"bogus": 1})


def test_resume_with_another_loss_is_refused(arrays, tmp_path):
    options = dict(pretrained=False, output_dim=8, cache=False, batch_size=8, num_workers=0)
    finetuner.fit("test_cnn", arrays, epochs=1, output_dir=tmp_path / "out", loss="TripletMarginLoss", **options)
    with pytest.raises(ValueError, match="trained with the loss TripletMarginLoss, this run uses MultiSimilarityLoss"):
        finetuner.fit("test_cnn", arrays, epochs=2, resume_from=tmp_path / "out" / "checkpoints",
                      loss="MultiSimilarityLoss", **options)


def test_a_folder_export_never_replaces_a_file_without_overwrite(tmp_path):
    model = finetuner.build_model("timm:test_vit", pretrained=False, output_dim=8)
    target = tmp_path / "mine.txt"
    target.write_text("the user's notes")
    with pytest.raises(ValueError, match="is an existing file: pass overwrite=True"):
        model.export(target, format="timm")
    assert target.read_text() == "the user's notes"
    assert model.export(target, format="timm", overwrite=True).is_dir()


def test_a_file_export_onto_a_folder_is_one_clear_error(saved_model, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    result = runner.invoke(app, ["export", str(saved_model), str(folder)])
    assert result.exit_code == 1 and f"{folder} is a folder: format 'onnx' writes one file" in result.output
    file = tmp_path / "old.onnx"
    file.write_text("")
    result = runner.invoke(app, ["export", str(saved_model), str(file)])
    assert result.exit_code == 1 and "--overwrite" in result.output


def test_world_size_without_torchrun_says_so(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="WORLD_SIZE=2 is set but RANK, MASTER_ADDR, MASTER_PORT not: .*torchrun"):
        distributed.init_distributed()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["display", "test_cnn", "--input-size", "3,x,32"], "--input-size must be a list of whole numbers"),
        (["fit", "test_cnn", "data", "--epochs", "x"], "--epochs must be a whole number, got 'x'."),
        (["fit", "test_cnn", "data", "--learning-rate", "nan"], "--learning-rate must be a finite number"),
        (["search", "missing-index", "q"], "missing-index is no index folder: build one with `finetuner index"),
    ],
)
def test_cli_errors_are_one_line_naming_the_flag(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and expected in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_os_error_is_one_line_naming_the_path(saved_model, files, tmp_path):
    output = tmp_path / "no" / "such" / "e.npy"
    result = runner.invoke(app, ["encode", str(saved_model), files.items[0], "--output", str(output)])
    assert result.exit_code == 1 and str(tmp_path / "no" / "such") in result.output, result.output
    assert "Errno" not in result.output and len(result.output.strip().splitlines()) == 1
