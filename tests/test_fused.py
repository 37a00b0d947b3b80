"""The fused CPU backend equals the torch reference forward for every one-layer family."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from edgesr.engine import BACKENDS, make_backend, native
from edgesr.engine.fused import FusedBackend, auto_backend, make_plan, separate
from edgesr.errors import EdgesrError
from edgesr.models import create_model

needs_kernel = pytest.mark.skipif(native.load() is None, reason="fused kernel could not be compiled")

ONE_LAYER = [f"{family}_s{s}_K{k}_C{c}" for family in ("eSR-MAX", "eSR-TM", "eSR-TR")
             for s, k, c in ((2, 3, 1), (3, 5, 4), (4, 7, 2), (2, 7, 16))]
BICUBIC = ["Bicubic_s2", "Bicubic_s3", "Bicubic_s4"]


def _random_model(model_id: str) -> torch.nn.Module:
    """A model with random weights, so keys/queries are far from the centre-tap initialisation."""
    model = create_model(model_id)
    if hasattr(model, "filter"):
        torch.manual_seed(zlib.crc32(model_id.encode()))  # hash() of a str changes per process
        with torch.no_grad():
            model.filter.weight.normal_(0.0, 0.5)
    return model


def _assert_matches(got: torch.Tensor, reference: torch.Tensor, tolerance: float = 1e-5) -> None:
    assert got.shape == reference.shape and got.dtype == torch.float32
    scale = float(reference.abs().max()) or 1.0
    torch.testing.assert_close(got, reference, rtol=tolerance, atol=tolerance * scale)


def test_fused_is_registered():
    assert BACKENDS["fused"] is FusedBackend


@needs_kernel
@pytest.mark.parametrize("model_id", ONE_LAYER + BICUBIC)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 1, 23, 37), (1, 1, 2, 70), (2, 1, 41, 3)])
def test_fused_equals_reference_forward(model_id, shape):
    model = _random_model(model_id)
    lr = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = model(lr)
    _assert_matches(make_backend("fused", model)(lr), reference)


@needs_kernel
def test_fused_handles_values_outside_0_1_and_large_keys():
    model = _random_model("eSR-TR_s2_K5_C8")
    lr = 20 * torch.randn(1, 1, 19, 33, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        reference = model(lr)
    # query * key reaches thousands here, so float32 rounding of the logits moves the softmax
    # weights: over 200 random weight seeds the largest difference was 7.2e-5 of the range.
    _assert_matches(make_backend("fused", model)(lr), reference, tolerance=2e-4)


@needs_kernel
def test_fused_uint8_path_equals_rounded_reference():
    model = _random_model("eSR-MAX_s3_K3_C2")
    plane = np.random.default_rng(3).integers(0, 256, (2, 17, 29), dtype=np.uint8)
    with torch.inference_mode():
        reference = model(torch.from_numpy(plane)[:, None].float() / 255)[:, 0]
    expected = (reference.clamp(0, 1) * 255).numpy()
    got = FusedBackend(model).run(plane, np.uint8, (1 / 255, 0.0), (255.0, 0.0))
    assert got.dtype == np.uint8 and got.shape == (2, 51, 87)
    assert np.abs(got.astype(np.float64) - expected).max() <= 0.5 + 1e-3


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fused_result_does_not_depend_on_threads(threads):
    model = _random_model("eSR-TM_s2_K7_C4")
    lr = torch.rand(2, 1, 130, 90, generator=torch.Generator().manual_seed(4))
    one = FusedBackend(model, threads=1)(lr)
    assert torch.equal(FusedBackend(model, threads=threads)(lr), one)


@needs_kernel
def test_fused_empty_batch_gives_empty_output():
    out = make_backend("fused", create_model("eSR-MAX_s2_K3_C1"))(torch.zeros(0, 1, 5, 6))
    assert out.shape == (0, 1, 10, 12)


def test_bicubic_plan_is_separable_and_trimmed():
    plan = make_plan(create_model("Bicubic_s2"))
    assert plan.weight.shape == (4, 5, 5) and plan.vert.shape == (2, 5) and plan.horz.shape == (2, 5)


def _separable_reference(x: np.ndarray, vert: np.ndarray, horz: np.ndarray, s: int, pad: tuple[int, int]) -> np.ndarray:
    """out[y*s + r, x*s + q] = sum vert[r, a] horz[q, b] in[y + a - pad_top, x + b - pad_left], zeros outside."""
    kh, kw = vert.shape[1], horz.shape[1]
    weight = torch.from_numpy(np.einsum("ra,qb->rqab", vert, horz).reshape(s * s, 1, kh, kw))
    padded = torch.nn.functional.pad(torch.from_numpy(x)[:, None], (pad[1], kw - 1 - pad[1], pad[0], kh - 1 - pad[0]))
    return torch.nn.functional.pixel_shuffle(torch.nn.functional.conv2d(padded, weight), s)[:, 0].numpy()


@needs_kernel
@pytest.mark.parametrize("s", [2, 3, 4])
@pytest.mark.parametrize("layout", ["bicubic", "shifted", "dense"])
def test_separable_filters_of_any_layout_match_the_reference(s, layout):
    """The kernel's 4-tap path shares one 5-tap window across phases when the phases start where
    bicubic's do (TAPS4_SHIFT); 4-tap phases that start elsewhere, and 5-tap ones, take the
    general path: all three must give the same convolution."""
    rng = np.random.default_rng(s)
    vert, horz = rng.normal(size=(2, s, 5)).astype(np.float32)
    if layout != "dense":  # 4 non-zero taps per phase, starting at 0 or 1
        for f in (vert, horz):
            for q in range(s):
                start = int(q >= s // 2) if layout == "bicubic" else int(q < (s + 1) // 2)
                f[q, [t for t in range(5) if not start <= t < start + 4]] = 0.0
    x = rng.uniform(0, 1, (2, 13, 37)).astype(np.float32)
    out = np.empty((2, 13 * s, 37 * s), np.float32)
    native.plane(x, out, native.filter_struct(None, vert, horz, (5, 5), (2, 2), 1, 0), s, False, 2)
    reference = _separable_reference(x, vert, horz, s, (2, 2))
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5 * float(np.abs(reference).max()))


def test_separate_rejects_a_filter_that_is_not_an_outer_product():
    weight = np.random.default_rng(5).normal(size=(4, 3, 3)).astype(np.float32)
    assert separate(weight, 2) == (None, None)


def test_fused_refuses_other_families_with_a_clear_error():
    with pytest.raises(EdgesrError, match="eSR-CNN_s2_C2_D1_S3.*backend='torch'"):
        FusedBackend(create_model("eSR-CNN_s2_C2_D1_S3"))


def test_fused_refuses_non_float32():
    with pytest.raises(EdgesrError, match="float32"):
        FusedBackend(create_model("eSR-MAX_s2_K3_C1"), dtype="bfloat16")


@needs_kernel
def test_auto_picks_fused_for_one_layer_models_on_cpu():
    assert auto_backend(create_model("eSR-TM_s3_K3_C2"), "cpu") == "fused"
    assert isinstance(make_backend("auto", create_model("Bicubic_s4")), FusedBackend)


def test_auto_picks_torch_where_the_kernel_does_not_apply():
    assert auto_backend(create_model("FSRCNN_s2_D6_S1_M1"), "cpu") == "torch"
    assert auto_backend(create_model("eSR-MAX_s2_K3_C1"), "cpu", "bfloat16") == "torch"


def test_auto_falls_back_to_torch_without_a_compiler(monkeypatch):
    monkeypatch.setattr(native, "load", lambda: None)
    assert auto_backend(create_model("eSR-MAX_s2_K3_C1"), "cpu") == "torch"


def test_native_build_failure_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGESR_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    native.load.cache_clear()
    try:
        assert native.load() is None
        assert "false failed" in native.unavailable_reason()
    finally:
        monkeypatch.undo()
        native.load.cache_clear()


def test_missing_compiler_is_one_warning_naming_why(monkeypatch, caplog):
    monkeypatch.setattr(native, "_compiler", lambda: None)
    native.load.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="edgesr"):
            assert native.load() is None
            assert native.load() is None  # cached: still one line
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "no C compiler found" in warnings[0]
    finally:
        monkeypatch.undo()
        native.load.cache_clear()
