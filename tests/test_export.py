"""ONNX and TorchScript export: valid graphs that match the torch reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from typer.testing import CliRunner  # noqa: E402

from edgesr.cli import app  # noqa: E402
from edgesr.engine import BACKENDS, Upscaler  # noqa: E402
from edgesr.export import export_onnx, export_torchscript  # noqa: E402
from edgesr.export_check import onnx_parity, torchscript_parity  # noqa: E402
from edgesr.errors import EdgesrError  # noqa: E402
from edgesr.models import create_model, load_model  # noqa: E402
from noisy_models import noisy_model  # noqa: E402

#: Every family at every paper scale, with small widths so the test stays fast.
FAMILY_TEMPLATES = ["Bicubic_s{s}", "eSR-MAX_s{s}_K5_C3", "eSR-TM_s{s}_K3_C4", "eSR-TR_s{s}_K7_C2",
                    "eSR-CNN_s{s}_C2_D3_S3", "ESPCN_s{s}_D4_S6", "FSRCNN_s{s}_D6_S3_M1"]
ALL_IDS = [t.format(s=s) for t in FAMILY_TEMPLATES for s in (2, 3, 4)]


def model_with_random_weights(model_id: str) -> torch.nn.Module:
    """Fresh init plus noise so every weight matters (Bicubic keeps its exact kernel)."""
    return noisy_model(model_id, 0.05)


@pytest.mark.parametrize("model_id", ALL_IDS)
def test_onnx_luma_graph_matches_torch_within_1e5(model_id, tmp_path):
    model = model_with_random_weights(model_id)
    path = export_onnx(model, tmp_path / "model.onnx")  # runs onnx.checker
    assert onnx_parity(model, path, size=(37, 29)) <= 1e-5


def test_onnx_graph_has_dynamic_batch_and_size(tmp_path):
    model = model_with_random_weights("FSRCNN_s3_D6_S3_M1")
    path = export_onnx(model, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 1, 5, 7), (3, 1, 64, 41)]:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        out = session.run(None, {"lr": x})[0]
        assert out.shape == (shape[0], 1, 3 * shape[2], 3 * shape[3])
        with torch.inference_mode():
            assert np.abs(out - model(torch.from_numpy(x)).numpy()).max() <= 1e-5


@pytest.mark.parametrize("model_id", ["eSR-TR_s2_K5_C4", "ESPCN_s3_D4_S6", "Bicubic_s4"])
def test_onnx_color_graph_matches_upscaler_within_one_level(model_id, tmp_path):
    model = model_with_random_weights(model_id)
    path = export_onnx(model, tmp_path / "rgb.onnx", color="ycbcr")
    for size in [(37, 29), (1, 1), (3, 2)]:  # also smaller than the border padding
        assert onnx_parity(model, path, color="ycbcr", size=size) <= 1


@pytest.mark.parametrize("model_id", ["eSR-MAX_s2_K3_C2", "ESPCN_s3_D4_S6"])
def test_onnx_rgb_graph_matches_upscaler_color_rgb_within_one_level(model_id, tmp_path):
    model = model_with_random_weights(model_id)
    path = export_onnx(model, tmp_path / "rgb.onnx", color="rgb")
    assert onnx_parity(model, path, color="rgb") <= 1


def test_export_takes_an_id_with_its_shipped_weights_like_a_module(tmp_path):
    by_id = export_onnx("eSR-MAX_s2_K3_C2", tmp_path / "id.onnx")
    assert onnx_parity(load_model("eSR-MAX_s2_K3_C2"), by_id) <= 1e-5
    assert onnx_parity("eSR-MAX_s2_K3_C2", by_id) <= 1e-5


def test_export_color_means_what_it_means_in_upscaler(tmp_path):
    with pytest.raises(EdgesrError, match="choose ycbcr or rgb"):
        export_onnx("Bicubic_s2", tmp_path / "x.onnx", color=True)


def test_onnx_float_color_graph_matches_upscaler(tmp_path):
    model = model_with_random_weights("eSR-CNN_s2_C2_D3_S3")
    path = export_onnx(model, tmp_path / "rgb_float.onnx", color="ycbcr", pixels="float")
    assert onnx_parity(model, path, color="ycbcr", pixels="float") <= 1.0  # Upscaler rounds, the float graph does not


def test_onnx_fp16_graph_is_close_to_float32_reference(tmp_path):
    model = model_with_random_weights("eSR-TM_s2_K5_C4")
    path = export_onnx(model, tmp_path / "half.onnx", fp16=True)
    assert ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].type \
        == "tensor(float16)"
    assert onnx_parity(model, path, fp16=True) <= 3e-3


@pytest.mark.parametrize("model_id", ["eSR-MAX_s3_K5_C3", "FSRCNN_s2_D6_S3_M1", "Bicubic_s3"])
def test_torchscript_matches_torch(model_id, tmp_path):
    model = model_with_random_weights(model_id)
    assert torchscript_parity(model, export_torchscript(model, tmp_path / "model.pt")) <= 1e-6
    rgb = export_torchscript(model, tmp_path / "rgb.pt", color="ycbcr")
    assert torchscript_parity(model, rgb, color="ycbcr") <= 1


def test_onnxruntime_backend_upscales_like_torch():
    assert "onnxruntime" in BACKENDS
    model = model_with_random_weights("ESPCN_s2_D4_S6")
    image = np.random.default_rng(0).integers(0, 256, size=(45, 38, 3), dtype=np.uint8)
    with_ort = Upscaler(model, backend="onnxruntime").upscale(image)
    with_torch = Upscaler(model).upscale(image)
    assert np.abs(with_ort.astype(int) - with_torch).max() <= 1


def test_cli_export_writes_checked_onnx(tmp_path):
    target = tmp_path / "esr.onnx"
    result = CliRunner().invoke(app, ["export", "eSR-MAX_s2_K3_C2", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.is_file() and "max |difference|" in result.output


def test_cli_export_color_takes_the_upscaler_modes(tmp_path):
    target = tmp_path / "rgb.onnx"
    result = CliRunner().invoke(app, ["export", "Bicubic_s2", "--color", "rgb", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "RGB uint8 (color rgb)" in result.output
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "rgb"


def test_cli_export_rejects_unknown_format(tmp_path):
    result = CliRunner().invoke(app, ["export", "eSR-MAX_s2_K3_C2", "--format", "tflite", "-o",
                                      str(tmp_path / "x")])
    assert result.exit_code == 1 and not (tmp_path / "x").exists()


@pytest.mark.parametrize("model_id", ["eSR-TR_s2_K7_C16", "FSRCNN_s4_D56_S12_M4", "ESPCN_s3_D64_S32"])
def test_onnx_matches_torch_with_official_weights(model_id, reference_dir, tmp_path):
    weights = reference_dir / "weights" / f"{model_id}.model"
    if not weights.is_file():
        pytest.skip(f"{weights.name} not in the reference set")
    model = create_model(model_id, weights=weights)
    assert onnx_parity(model, export_onnx(model, tmp_path / "model.onnx"), size=(23, 31)) <= 1e-5
