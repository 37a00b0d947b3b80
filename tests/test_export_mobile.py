"""ncnn and Core ML exports: the files run (ncnn) or load (Core ML, Apple-only runtime) and match
the torch forward for every family. Skipped when the optional converters are not installed."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from edgesr.cli import app
from edgesr.errors import EdgesrError
from edgesr.models import create_model
from noisy_models import noisy_model

FAMILIES = ["Bicubic_s3", "eSR-MAX_s3_K3_C2", "eSR-TM_s2_K5_C4", "eSR-TR_s4_K7_C3", "ESPCN_s2_D4_S6",
            "FSRCNN_s2_D6_S3_M1", "eSR-CNN_s3_C2_D1_S3"]


def random_model(model_id: str) -> torch.nn.Module:
    """Random weights: a converter that dropped or reordered a layer cannot match by luck."""
    return noisy_model(model_id, 0.1)


@pytest.mark.parametrize("model_id", FAMILIES)
def test_ncnn_file_runs_in_ncnn_and_matches_torch(model_id, tmp_path):
    pytest.importorskip("pnnx")
    pytest.importorskip("ncnn")
    from edgesr.export_mobile import export_ncnn, ncnn_parity

    model = random_model(model_id)
    param, weights = export_ncnn(model, tmp_path / "model")
    assert (param.name, weights.name) == ("model.param", "model.bin")
    assert ncnn_parity(model, param, weights) <= 1e-4


def test_ncnn_parity_catches_other_weights(tmp_path):
    pytest.importorskip("pnnx")
    pytest.importorskip("ncnn")
    from edgesr.export_mobile import export_ncnn, ncnn_parity

    param, weights = export_ncnn(random_model("eSR-TM_s2_K5_C4"), tmp_path / "model")
    assert ncnn_parity(create_model("eSR-TM_s2_K5_C4"), param, weights) > 1e-2


@pytest.mark.parametrize("model_id", FAMILIES)
def test_coreml_package_loads_with_a_free_size_luma_input(model_id, tmp_path):
    pytest.importorskip("coremltools")
    from edgesr.export_mobile import coreml_check, export_coreml

    model = random_model(model_id)
    path = export_coreml(model, tmp_path / "model")
    assert path.name == "model.mlpackage" and path.is_dir()
    assert "lr (1, 1, H<=8192, W<=8192) -> hr" in coreml_check(model, path)


def test_cli_exports_ncnn_beside_each_other(tmp_path):
    pytest.importorskip("pnnx")
    pytest.importorskip("ncnn")
    result = CliRunner().invoke(app, ["export", "eSR-MAX_s2_K3_C2", "--format", "ncnn", "-o", str(tmp_path / "esr")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "esr.param").exists() and (tmp_path / "esr.bin").exists()
    assert "max |difference| vs torch reference" in result.output


def test_cli_refuses_colour_graphs_for_mobile_formats(tmp_path):
    result = CliRunner().invoke(app, ["export", "eSR-MAX_s2_K3_C2", "--format", "coreml", "--color", "ycbcr",
                                      "-o", str(tmp_path / "esr")])
    assert result.exit_code == 1 and "luma graph" in result.output


def test_missing_converter_is_a_clear_error(monkeypatch, tmp_path):
    import builtins

    from edgesr.export_mobile import export_ncnn

    real_import = builtins.__import__

    def no_pnnx(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if name == "pnnx":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pnnx)
    with pytest.raises(EdgesrError, match=r"pip install 'edgesr\[ncnn\]'"):
        export_ncnn(create_model("eSR-MAX_s2_K3_C2"), tmp_path / "m")


@pytest.mark.parametrize("model_id", [m for m in FAMILIES if not m.startswith("FSRCNN")])
def test_tflite_file_runs_in_litert_and_matches_torch(model_id, tmp_path):
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    from edgesr.export_mobile import export_tflite, tflite_parity

    model = random_model(model_id)
    path = export_tflite(model, tmp_path / "model", size=(37, 29))
    assert path.name == "model.tflite"
    assert tflite_parity(model, path) <= 1e-4


def test_tflite_names_the_converter_failure_for_fsrcnn(tmp_path):
    """litert-torch 0.10 cannot lower FSRCNN's transposed convolution (README says so)."""
    pytest.importorskip("litert_torch")
    from edgesr.export_mobile import export_tflite

    with pytest.raises(EdgesrError, match="litert-torch could not convert FSRCNN"):
        export_tflite(create_model("FSRCNN_s2_D6_S3_M1"), tmp_path / "model", size=(21, 17))
