"""The `edgesr upscale` and `edgesr models` commands, as a user runs them."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from edgesr import create_model
from edgesr.cli import app
from edgesr.imaging import write_image
from edgesr.weights import default_model_id

runner = CliRunner()


def make_image(path, size=(12, 10), mode="RGB"):
    data = np.random.default_rng(0).integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
    Image.fromarray(data[..., 0] if mode == "L" else data, mode=None).save(path)
    return path


def test_upscale_file_into_new_folder(tmp_path):
    make_image(tmp_path / "a.png")
    result = runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "a.png").size == (24, 20)
    assert f"upscaled 1 image x2 with {default_model_id(2)}" in result.output


def test_upscale_single_input_to_a_file_name(tmp_path):
    make_image(tmp_path / "a.png")
    result = runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "big.jpg"), "-s", "3"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "big.jpg").size == (36, 30)


def test_upscale_folder_and_glob_with_weights(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png"):
        make_image(tmp_path / "in" / name)
    make_image(tmp_path / "c.png")
    model = create_model("eSR-MAX_s2_K3_C2")
    torch.save(model.state_dict(), tmp_path / "w.model")
    result = runner.invoke(app, ["upscale", str(tmp_path / "in"), str(tmp_path / "c*.png"), "-o",
                                 str(tmp_path / "out"), "--model", "eSR-MAX_s2_K3_C2", "--weights",
                                 str(tmp_path / "w.model")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]


def test_bad_file_in_a_batch_is_reported_and_the_rest_is_done(tmp_path):
    (tmp_path / "in").mkdir()
    make_image(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"")
    result = runner.invoke(app, ["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "bad.png: empty file" in result.output
    assert "1 failed" in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]


def test_output_that_would_overwrite_an_input_is_refused(tmp_path):
    make_image(tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    result = runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path)])
    assert result.exit_code == 1 and "would overwrite an input" in result.output
    assert (tmp_path / "a.png").read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_folder_is_reported(tmp_path):
    make_image(tmp_path / "a.png")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(stat.S_IRUSR | stat.S_IXUSR)
    result = runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "ro")])
    assert result.exit_code == 1 and "cannot write" in result.output
    assert list((tmp_path / "ro").iterdir()) == []


def test_unknown_model_id_is_one_line(tmp_path):
    make_image(tmp_path / "a.png")
    result = runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "-m", "eSR-XL_s2"])
    assert result.exit_code == 1 and "malformed model id 'eSR-XL_s2'" in result.output


def test_weights_that_do_not_fit_the_id(tmp_path):
    make_image(tmp_path / "a.png")
    torch.save(create_model("eSR-MAX_s2_K3_C2").state_dict(), tmp_path / "w.model")
    result = runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
                                 "-m", "eSR-MAX_s2_K5_C2", "-w", str(tmp_path / "w.model")])
    assert result.exit_code == 1 and "w.model: weights do not fit eSR-MAX_s2_K5_C2" in result.output
    assert not (tmp_path / "o").exists()


def test_models_lists_filtered_ids_with_parameters():
    result = runner.invoke(app, ["models", "--family", "eSR-MAX", "--scale", "2"])
    assert result.exit_code == 0
    assert "eSR-MAX_s2_K3_C1" in result.output and "eSR-MAX_s3" not in result.output
    assert "48 models" in result.output


def test_output_folder_that_cannot_be_created_is_reported(tmp_path):
    make_image(tmp_path / "a.png")
    (tmp_path / "blocker").write_text("a file, not a folder")
    result = runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "blocker" / "out")])
    assert result.exit_code == 1 and "cannot create output folder" in result.output


def test_outputs_get_the_usual_file_permissions(tmp_path):
    make_image(tmp_path / "a.png")
    runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")])
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out" / "a.png").stat().st_mode) == 0o666 & ~umask


def test_models_shipped_lists_trained_weights_with_their_metrics():
    result = runner.invoke(app, ["models", "--shipped", "--scale", "2"])
    assert result.exit_code == 0
    assert f"{default_model_id(2)} *" in result.output and "Set14 dB" in result.output
    assert "_s3_" not in result.output


def test_folder_output_can_change_the_image_format(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.bmp"):
        write_image(source / name, rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8))
    result = CliRunner().invoke(app, ["upscale", str(source), "-o", str(tmp_path / "out"), "--format", "png",
                                      "-m", "Bicubic_s2", "--verbose"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert "stages: read" in result.output and "2 images" in result.output


def test_every_command_turns_a_library_error_into_one_red_line(tmp_path):
    for args in (["models", "--family", "nope"], ["eval", "eSR-XL_s2"], ["export", "eSR-XL_s2", "-o", "x.onnx"],
                 ["train", "eSR-XL_s2"], ["explain", "eSR-XL_s2", "-o", str(tmp_path)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, args
        assert "error:" in result.output, args
