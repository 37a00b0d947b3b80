"""Reduced-precision variants of the fused kernel (bf16, int8 on x86; fp16 on ARMv8.2, tested
under qemu by .ci/arm.sh): opt-in, close to fp32, and refused clearly where they cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from typer.testing import CliRunner

from edgesr.cli import app
from edgesr.engine import Upscaler, native
from edgesr.engine.fused import FusedBackend
from edgesr.errors import EdgesrError
from edgesr.models import create_model

needs_kernel = pytest.mark.skipif(native.load() is None, reason="fused kernel could not be compiled")
X86_VARIANTS = ["bf16", "int8"]


def trained_like(model_id: str) -> torch.nn.Module:
    """The centre-tap start plus small noise: filters of a trained model's size."""
    model = create_model(model_id)
    torch.manual_seed(0)
    with torch.no_grad():
        model.filter.weight.add_(torch.randn_like(model.filter.weight) * 0.1)
    return model.eval()


def gray(h: int, w: int, seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(seed).normal(0, 12, (h, w))
    return np.clip(128 + 90 * np.sin(x / 5.0) * np.cos(y / 7.0) + noise, 0, 255).astype(np.uint8)


def skip_unless_this_cpu_runs(precision: str) -> None:
    if precision not in native.precisions():
        pytest.skip(f"this CPU has no {native.PRECISION_NEEDS[precision]}")


@needs_kernel
def test_default_precision_is_fp32():
    assert Upscaler("eSR-MAX_s2_K3_C2").backend.precision == "fp32"


@needs_kernel
@pytest.mark.parametrize("precision", X86_VARIANTS)
@pytest.mark.parametrize("model_id", ["eSR-MAX_s2_K3_C2", "eSR-TM_s3_K5_C4", "eSR-TR_s4_K7_C3", "eSR-TM_s2_K7_C16"])
def test_reduced_precision_stays_within_a_few_levels_of_fp32(precision, model_id):
    skip_unless_this_cpu_runs(precision)
    model = trained_like(model_id)
    image = gray(37, 53)
    exact = Upscaler(model).upscale(image).astype(int)
    reduced = Upscaler(model, precision=precision).upscale(image).astype(int)
    error = np.abs(reduced - exact)
    assert error.max() <= (3 if precision == "bf16" else 8)
    assert np.sqrt((error ** 2).mean()) <= (0.6 if precision == "bf16" else 1.5)
    assert error.max() > 0 or precision == "bf16"  # int8 weights cannot all land on their grid


@needs_kernel
@pytest.mark.parametrize("precision", X86_VARIANTS)
def test_reduced_precision_matches_the_torch_forward_on_float_planes(precision):
    skip_unless_this_cpu_runs(precision)
    model = trained_like("eSR-TR_s2_K5_C4")
    lr = torch.from_numpy(gray(29, 41, seed=1).astype(np.float32) / 255)[None, None]
    with torch.inference_mode():
        reference = model(lr)
    got = FusedBackend(model, precision=precision)(lr)
    error = float((got - reference).abs().max())
    assert got.shape == reference.shape
    assert 1e-5 < error < (0.01 if precision == "bf16" else 0.03)  # above fp32's ~1e-7: it ran reduced


@needs_kernel
@pytest.mark.parametrize("precision", X86_VARIANTS)
def test_colour_images_and_threads_run_at_reduced_precision(precision):
    skip_unless_this_cpu_runs(precision)
    model = trained_like("eSR-TM_s2_K7_C4")
    rgb = np.stack([gray(67, 75, seed=k) for k in range(3)], axis=-1)
    exact = Upscaler(model).upscale(rgb).astype(int)
    reduced = Upscaler(model, precision=precision).upscale(rgb).astype(int)
    assert reduced.shape == exact.shape and np.abs(reduced - exact).max() <= 8


@needs_kernel
def test_unknown_or_unavailable_precision_is_a_clear_error():
    with pytest.raises(EdgesrError, match="unknown precision"):
        Upscaler("eSR-MAX_s2_K3_C2", precision="fp8")
    missing = next((p for p in ("bf16", "int8", "fp16") if p not in native.precisions()), None)
    if missing is not None:
        with pytest.raises(EdgesrError, match="needs"):
            Upscaler("eSR-MAX_s2_K3_C2", precision=missing)


@needs_kernel
def test_bicubic_and_other_backends_refuse_reduced_precision():
    with pytest.raises(EdgesrError, match="Bicubic"):
        Upscaler("Bicubic_s2", precision="bf16")
    with pytest.raises(EdgesrError, match="fused CPU kernel"):
        Upscaler("eSR-MAX_s2_K3_C2", backend="torch", precision="bf16")


@needs_kernel
def test_cli_upscale_takes_a_precision(tmp_path):
    from edgesr.imaging import write_image

    write_image(tmp_path / "in.png", gray(20, 24))
    bad = CliRunner().invoke(app, ["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.png"),
                                   "--precision", "fp8"])
    assert bad.exit_code == 1 and "unknown precision" in bad.output
    available = [p for p in native.precisions() if p != "fp32"]
    if available:
        ok = CliRunner().invoke(app, ["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "y.png"),
                                      "-m", "eSR-MAX_s2_K3_C2", "--precision", available[0]])
        assert ok.exit_code == 0 and (tmp_path / "y.png").exists()
