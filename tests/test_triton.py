"""The Triton backend's kernels, run on CPU tensors by Triton's interpreter (TRITON_INTERPRET=1).

Every one-layer family at scales 2..4, odd sizes, batches, both border modes, float and integer
I/O, against the torch forward (fp32 within 1e-5) and the CPU colour pipeline (within one level).
"""

from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are decorated

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton", reason="Triton is not installed (the 'gpu' extra); CI installs it")

from edgesr.engine import Upscaler, make_backend  # noqa: E402
from edgesr.engine.triton_backend import TritonBackend, interpreting, tile_setting  # noqa: E402
from edgesr.errors import EdgesrError  # noqa: E402
from edgesr.models import context_pixels, create_model  # noqa: E402
from noisy_models import noisy_model  # noqa: E402

if not interpreting():
    pytest.skip("Triton's kernels were loaded without TRITON_INTERPRET=1", allow_module_level=True)

# (family, K, C): each family with few channels (summed without a matrix product) and with
# many (tl.dot), plus Bicubic.
ONE_LAYER = [("eSR-MAX", 3, 2), ("eSR-MAX", 7, 8), ("eSR-TM", 3, 2), ("eSR-TM", 5, 8),
             ("eSR-TR", 3, 4), ("eSR-TR", 7, 5), ("Bicubic", 0, 0)]


def model_id(family: str, k: int, c: int, scale: int) -> str:
    return f"Bicubic_s{scale}" if family == "Bicubic" else f"{family}_s{scale}_K{k}_C{c}"


def random_model(name: str) -> torch.nn.Module:
    return noisy_model(name, 0.0)


def forward(model: torch.nn.Module, lr: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.float()(lr)


def reference(model: torch.nn.Module, lr: torch.Tensor, border: str) -> torch.Tensor:
    """The torch forward; for ``replicate``, on the input edge-padded over the model's support."""
    if border == "zero":
        return forward(model, lr)
    s, c = model.spec.scale, context_pixels(model.spec)
    padded = forward(model, F.pad(lr, (c, c, c, c), mode="replicate"))
    return padded[..., c * s: -c * s, c * s: -c * s]


@pytest.mark.parametrize("border", ["zero", "replicate"])
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("family,k,c", ONE_LAYER)
def test_float_planes_equal_the_torch_forward(family, k, c, scale, border):
    model = random_model(model_id(family, k, c, scale))
    lr = torch.rand(2, 1, 7, 11, generator=torch.Generator().manual_seed(1))
    got = TritonBackend(model, device="cpu").forward(lr, border=border == "replicate")
    assert got.shape == (2, 1, 7 * scale, 11 * scale) and got.dtype == torch.float32
    assert (got - reference(model, lr, border)).abs().max() <= 1e-5


def test_the_backend_call_is_the_zero_padded_forward_on_the_cpu():
    model = random_model("eSR-TM_s2_K5_C8")
    lr = torch.rand(3, 1, 5, 9, generator=torch.Generator().manual_seed(2))
    got = TritonBackend(model, device="cpu")(lr)
    assert got.device.type == "cpu" and (got - forward(model, lr)).abs().max() <= 1e-5


def test_uint8_planes_in_and_out_are_the_rounded_clamped_forward():
    model = random_model("eSR-TM_s2_K3_C4")
    x = torch.randint(0, 256, (2, 1, 6, 9), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    got = TritonBackend(model, device="cpu").forward(x, in_affine=(1 / 255, 0.0), out_dtype=torch.uint8,
                                                     out_affine=(255.0, 0.0))
    expected = (forward(model, x.float() / 255) * 255).clamp(0, 255).round()
    assert got.dtype == torch.uint8
    assert (got.float() - expected).abs().max() <= 1  # a tie may round the other way
    assert (got.float() == expected).float().mean() > 0.99


@pytest.mark.parametrize("dtype,tolerance", [("float16", 2e-3), ("bfloat16", 2e-2)])
def test_half_precisions_stay_near_the_float32_forward(dtype, tolerance):
    model = random_model("eSR-TR_s2_K5_C8")
    lr = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    reference = forward(model, lr)
    got = TritonBackend(model, device="cpu", dtype=dtype)(lr)
    assert (got - reference).abs().max() <= tolerance * reference.abs().max()


@pytest.mark.parametrize("border", ["replicate", "zero"])
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("family,k,c", [("eSR-MAX", 3, 2), ("eSR-TM", 7, 16), ("eSR-TR", 3, 3),
                                        ("Bicubic", 0, 0)])
def test_rgb_uint8_images_match_the_cpu_colour_pipeline(family, k, c, scale, border):
    name = model_id(family, k, c, scale)
    model = random_model(name)
    image = np.random.default_rng(5).integers(0, 256, (7, 10, 3), dtype=np.uint8)
    expected = Upscaler(model, backend="torch", border=border).upscale(image)
    got = Upscaler(model, backend="triton", device="cpu", border=border).upscale(image)
    assert got.shape == expected.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("shape,dtype,options", [
    ((6, 9), np.uint8, {}),
    ((6, 9, 1), np.uint16, {}),
    ((5, 8, 4), np.uint16, {}),
    ((5, 8, 3), np.uint8, {"channels": "bgr"}),
    ((5, 8, 3), np.uint8, {"color": "rgb"}),
])
def test_gray_alpha_16_bit_and_channel_orders_match_the_cpu_pipeline(shape, dtype, options):
    model = random_model("eSR-TM_s3_K3_C4")
    image = np.random.default_rng(6).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    expected = Upscaler(model, backend="torch", **options).upscale(image)
    got = Upscaler(model, backend="triton", device="cpu", **options).upscale(image)
    assert got.shape == expected.shape and got.dtype == dtype
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_a_batch_of_frames_equals_each_frame_alone():
    backend = TritonBackend(random_model("eSR-MAX_s2_K3_C2"), device="cpu")
    generator = torch.Generator().manual_seed(7)
    frames = torch.randint(0, 256, (3, 5, 7, 3), dtype=torch.uint8, generator=generator)
    batch = backend.upscale_batch(frames)
    assert batch.shape == (3, 10, 14, 3)
    for i in range(3):
        assert torch.equal(batch[i], backend.upscale_batch(frames[i:i + 1])[0])


def test_flat_grey_stays_flat_through_bicubic():
    image = np.full((5, 7, 3), 77, np.uint8)
    got = Upscaler("Bicubic_s4", backend="triton", device="cpu").upscale(image)
    assert (got == 77).all()


def test_deep_families_are_refused_with_a_pointer_to_other_backends():
    with pytest.raises(EdgesrError, match="triton backend runs eSR-MAX/TM/TR and Bicubic"):
        TritonBackend(create_model("ESPCN_s2_D4_S6"), device="cpu")


def test_auto_never_picks_triton_on_the_cpu():
    assert make_backend("auto", create_model("Bicubic_s2"), device="cpu").name != "triton"


def test_a_cpu_device_without_the_interpreter_is_a_one_line_error():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = ("from edgesr.engine import Upscaler\n"
            "try:\n Upscaler('Bicubic_s2', backend='triton', device='cpu')\n"
            "except Exception as e:\n print(type(e).__name__, e)\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == ("EdgesrError the triton backend runs on CUDA; on the CPU only under"
                                     " Triton's interpreter (set TRITON_INTERPRET=1 before starting Python)")


def test_bench_times_the_kernel_on_resident_tensors_next_to_torch_and_the_rgb_call():
    from edgesr.bench import bench

    rows, info = bench(["eSR-MAX_s2_K3_C2"], backend="triton", device="cpu", repeats=1, size=(8, 12),
                       baselines=False, energy=True, energy_s=0.0)
    row = rows["eSR-MAX_s2_K3_C2"]
    assert row["backend"] == "triton"
    for key in ("ms_cpu", "ms_torch_reference_cpu", "ms_rgb_e2e_cpu", "gbs_cpu", "bandwidth_fraction_cpu"):
        assert row[key] > 0, key
    assert ("energy_note" in row) != ("joules_per_frame_cpu" in row)  # a figure, or why there is none


def test_uint8_planes_through_run_equal_the_fused_kernels_contract():
    model = random_model("eSR-TR_s3_K3_C2")
    planes = np.random.default_rng(8).integers(16, 236, (2, 6, 9), dtype=np.uint8)
    out = np.zeros((2, 18, 27), np.uint8)
    studio = ((1 / 219, -16 / 219), (219.0, 16.0), (16.0, 235.0))  # in map, out map, clamp
    TritonBackend(model, device="cpu").run(planes, np.uint8, *studio, border=True, out=out)
    expected = Upscaler(model, backend="torch").upscale_luma(planes[1].astype(np.float32))
    assert out.min() >= 16 and out.max() <= 235
    assert np.abs(out[1].astype(float) - np.round(expected)).max() <= 1


def test_video_frames_run_through_the_kernels_like_the_torch_path():
    av = pytest.importorskip("av")
    from fractions import Fraction

    from edgesr.video import FrameUpscaler, _plane

    frame = av.VideoFrame(22, 14, "yuv420p")
    rng = np.random.default_rng(9)
    for index in range(3):
        _plane(frame, index)[...] = rng.integers(16, 236, size=_plane(frame, index).shape, dtype=np.uint8)
    frame.pts, frame.time_base = 0, Fraction(1, 25)
    model = random_model("eSR-TM_s2_K3_C2")
    got = FrameUpscaler(Upscaler(model, backend="triton", device="cpu"))(frame)
    reference = FrameUpscaler(Upscaler(model, backend="torch"))(frame)
    for index in range(3):
        a, b = _plane(got, index).astype(int), _plane(reference, index).astype(int)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1


def test_another_tile_gives_the_same_output():
    model = random_model("eSR-TR_s3_K5_C8")
    lr = torch.rand(1, 1, 13, 21, generator=torch.Generator().manual_seed(10))
    backend = TritonBackend(model, device="cpu")
    default = backend(lr)
    backend.tile, backend.warps = tile_setting("4x8:2")
    assert (backend(lr) - default).abs().max() <= 1e-6  # the same sums, maybe in another order


def test_tile_settings_are_checked():
    assert tile_setting("16x32:8") == ((16, 32), 8) and tile_setting("8x4") == ((8, 4), 4)
    for bad in ("8x", "3x16", "2x4", "8x16:3"):
        with pytest.raises(EdgesrError, match="tile"):
            tile_setting(bad)
