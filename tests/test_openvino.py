"""The ``openvino`` backend: the deep families' ONNX graphs run by OpenVINO on the CPU, equal to the
torch forward (fp32, within 1e-5), and what ``backend="auto"`` picks for them. Skips without the
``openvino`` extra."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("openvino")

from edgesr.engine import Upscaler, make_backend  # noqa: E402
from edgesr.engine.openvino_backend import STATIC_SHAPES, OpenVinoBackend  # noqa: E402
from edgesr.errors import EdgesrError  # noqa: E402
from noisy_models import noisy_model  # noqa: E402

DEEP = ["ESPCN_s2_D16_S32", "ESPCN_s3_D0_S15", "FSRCNN_s2_D56_S12_M4", "FSRCNN_s3_D6_S1_M1",
        "eSR-CNN_s2_C4_D3_S9", "eSR-CNN_s4_C2_D1_S3"]


def trained_like(model_id: str) -> torch.nn.Module:
    """A model with random weights of a trained model's size (seeded), so outputs vary over 0..1."""
    return noisy_model(model_id, 0.0)


@pytest.mark.parametrize("model_id", DEEP)
def test_outputs_equal_the_torch_forward_within_1e5(model_id):
    model = trained_like(model_id)
    backend = OpenVinoBackend(model)
    x = torch.rand(2, 1, 31, 45, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = model(x)
    for _ in range(3):  # dynamic shape, then the shape compiled for itself, then from the cache
        out = backend(x)
        assert out.dtype == torch.float32 and out.shape == reference.shape
        assert float((out - reference).abs().max()) <= 1e-5


def test_official_weights_give_the_torch_output_within_1e5(reference_dir):
    from edgesr.models import load_model

    for model_id in ("ESPCN_s2_D16_S32", "FSRCNN_s2_D56_S12_M4", "eSR-CNN_s2_C4_D3_S9"):
        model = load_model(model_id, reference_dir / "weights" / f"{model_id}.model")
        x = torch.rand(1, 1, 40, 52, generator=torch.Generator().manual_seed(2))
        with torch.inference_mode():
            reference = model(x)
        assert float((OpenVinoBackend(model)(x) - reference).abs().max()) <= 1e-5


def test_each_call_returns_its_own_tensor():
    backend = OpenVinoBackend(trained_like("ESPCN_s2_D4_S6"))
    a = backend(torch.zeros(1, 1, 16, 16))
    kept = a.clone()
    backend(torch.ones(1, 1, 16, 16))
    assert torch.equal(a, kept)


def test_only_recent_shapes_stay_compiled():
    backend = OpenVinoBackend(trained_like("ESPCN_s2_D4_S6"))
    for size in range(8, 8 + STATIC_SHAPES + 2):
        for _ in range(2):
            backend(torch.rand(1, 1, size, size))
    assert len(backend._static) == STATIC_SHAPES


def test_auto_picks_openvino_for_deep_families_and_fused_for_one_layer():
    assert make_backend("auto", trained_like("FSRCNN_s2_D6_S1_M1")).name == "openvino"
    assert make_backend("auto", trained_like("eSR-MAX_s2_K3_C2")).name in ("fused", "torch")


def test_auto_keeps_torch_when_turned_off_or_not_float32(monkeypatch):
    assert make_backend("auto", trained_like("ESPCN_s2_D4_S6"), dtype="bfloat16").name == "torch"
    monkeypatch.setenv("EDGESR_OPENVINO", "0")
    assert make_backend("auto", trained_like("ESPCN_s2_D4_S6")).name == "torch"


def test_float16_is_refused_with_a_clear_error():
    with pytest.raises(EdgesrError, match="backend openvino runs float32"):
        OpenVinoBackend(trained_like("ESPCN_s2_D4_S6"), dtype="float16")


def test_upscaler_with_openvino_matches_torch_on_an_rgb_image():
    model = trained_like("ESPCN_s2_D16_S32")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    fast = Upscaler(model, backend="openvino").upscale(image)
    reference = Upscaler(model, backend="torch").upscale(image)
    assert fast.shape == reference.shape == (74, 106, 3)
    assert int(np.abs(fast.astype(int) - reference.astype(int)).max()) <= 1


def test_the_exported_graph_is_reused_from_the_disk_cache(tmp_path, monkeypatch):
    """The ONNX export is most of the set-up: a second backend for the same weights reads it back,
    and other weights get their own graph."""
    from edgesr import export
    from edgesr.engine import openvino_backend

    monkeypatch.setenv("EDGESR_CACHE", str(tmp_path))
    model = trained_like("ESPCN_s2_D16_S32")
    first = openvino_backend.onnx_graph(model)
    assert len(list(tmp_path.rglob("*.onnx"))) == 1

    def no_export(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("exported again")

    monkeypatch.setattr(export, "onnx_bytes", no_export)
    assert openvino_backend.onnx_graph(model) == first
    x = torch.rand(1, 1, 17, 19, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert float((OpenVinoBackend(model)(x) - model(x)).abs().max()) <= 1e-5
    other = trained_like("ESPCN_s2_D16_S32")
    with torch.no_grad():
        other.net[0].weight.add_(0.01)
    with pytest.raises(AssertionError, match="exported again"):
        openvino_backend.onnx_graph(other)
