"""The native colour pipeline gives today's NumPy pipeline's output within one level, for every
layout, depth, colour mode, border mode and family, and reads strided arrays without copies."""

from __future__ import annotations

import numpy as np
import pytest

from edgesr.engine import Upscaler, native
from edgesr.engine.color import CHROMA, MODEL, PRECOMPUTED, plan_color
from edgesr.engine.fused import FusedBackend
from edgesr.models import create_model

needs_kernel = pytest.mark.skipif(native.load() is None, reason="fused kernel could not be compiled")


def photo(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    """Smooth gradients with noise, so rounding and clipping both happen."""
    rng = np.random.default_rng(seed)
    peak = np.iinfo(dtype).max
    h, w = shape[:2]
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    channels = shape[2] if len(shape) == 3 else 1
    base = np.stack([0.5 + 0.45 * np.sin(6 * x + 4 * y + k) for k in range(channels)], axis=-1)
    noisy = np.clip(base + rng.normal(0, 0.08, base.shape), 0, 1) * peak
    image = np.rint(noisy).astype(dtype)
    return image if len(shape) == 3 else image[..., 0]


def assert_within_one_level(upscaler: Upscaler, image: np.ndarray) -> None:
    native_out = upscaler.upscale(image)
    reference = upscaler._upscale_numpy(image)
    assert native_out.shape == reference.shape and native_out.dtype == image.dtype
    assert np.abs(native_out.astype(np.int64) - reference.astype(np.int64)).max() <= 1


@needs_kernel
@pytest.mark.parametrize("model_id", ["Bicubic_s2", "eSR-MAX_s2_K3_C2", "eSR-TM_s3_K5_C4", "eSR-TR_s4_K3_C2",
                                      "ESPCN_s2_D4_S6", "eSR-CNN_s3_C2_D1_S3"])
@pytest.mark.parametrize("shape,dtype", [((37, 53, 3), np.uint8), ((31, 29, 4), np.uint16),
                                         ((23, 41), np.uint8), ((19, 17, 1), np.uint16)])
def test_native_pipeline_matches_numpy_within_one_level(model_id, shape, dtype):
    assert_within_one_level(Upscaler(create_model(model_id)), photo(shape, dtype))


@needs_kernel
@pytest.mark.parametrize("color,border", [("rgb", "replicate"), ("ycbcr", "zero"), ("rgb", "zero")])
def test_colour_and_border_modes_match_numpy(color, border):
    image = photo((33, 45, 4), np.uint8, seed=3)
    for model_id in ("eSR-TM_s2_K7_C4", "ESPCN_s3_D4_S6"):
        assert_within_one_level(Upscaler(create_model(model_id), color=color, border=border), image)


@needs_kernel
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("color,border", [("ycbcr", "replicate"), ("rgb", "zero")])
def test_bicubic_ids_mixed_in_registers_match_numpy(scale, color, border):
    # Bicubic ids run every plane through one separable filter and mix in registers
    # (sep_color in csrc/fused.c); widths past one vector with a tail, RGB and RGBA, 8 and 16 bits.
    upscaler = Upscaler(create_model(f"Bicubic_s{scale}"), color=color, border=border)
    for shape, dtype in (((21, 45, 3), np.uint8), ((17, 38, 4), np.uint16), ((9, 70, 4), np.uint8)):
        assert_within_one_level(upscaler, photo(shape, dtype, seed=scale))


@needs_kernel
def test_one_layer_models_run_fused_and_deep_ones_around_their_forward():
    assert isinstance(Upscaler(create_model("eSR-MAX_s2_K3_C1")).backend, FusedBackend)
    assert not isinstance(Upscaler(create_model("ESPCN_s2_D4_S6")).backend, FusedBackend)


@needs_kernel
def test_bgr_order_is_rgb_with_channels_swapped_in_and_out():
    image = photo((29, 31, 3), np.uint8, seed=4)
    model = create_model("eSR-TR_s2_K5_C4")
    rgb = Upscaler(model).upscale(image)
    bgr = Upscaler(model, channels="bgr").upscale(np.ascontiguousarray(image[..., ::-1]))
    # Y' sums the channels in input order, so B+G+R and R+G+B may round apart: with random
    # weights 2 runs in 30 put one pixel on the other side of a .5 (one level).
    difference = np.abs(bgr[..., ::-1].astype(int) - rgb.astype(int))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.999


@needs_kernel
def test_bgr_order_with_the_model_on_each_channel_keeps_channels_in_place():
    image = photo((19, 23, 3), np.uint8, seed=6)
    model = create_model("eSR-MAX_s2_K3_C2")
    rgb = Upscaler(model, color="rgb").upscale(image)
    bgr = Upscaler(model, color="rgb", channels="bgr").upscale(np.ascontiguousarray(image[..., ::-1]))
    assert np.array_equal(bgr[..., ::-1], rgb)


@needs_kernel
def test_bgra_keeps_alpha_last():
    image = photo((21, 19, 4), np.uint8, seed=5)
    bgra = np.concatenate([image[..., 2::-1], image[..., 3:]], axis=-1)
    model = create_model("eSR-MAX_s3_K3_C2")
    rgba = Upscaler(model).upscale(image)
    out = Upscaler(model, channels="bgr").upscale(bgra)
    assert np.array_equal(out[..., 3], rgba[..., 3])
    # Colour: one level apart at most, as in test_bgr_order_is_rgb_with_channels_swapped_in_and_out
    # (Y' sums the channels in input order; this exact comparison failed once in the full suite).
    difference = np.abs(out[..., 2::-1].astype(int) - rgba[..., :3].astype(int))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.999


@needs_kernel
def test_strided_views_are_read_in_place_and_equal_copies():
    big = photo((60, 80, 3), np.uint8, seed=6)
    view = big[7:47, 9:70]  # rows strided, pixels contiguous
    up = Upscaler(create_model("eSR-TM_s2_K3_C2"))
    assert np.array_equal(up.upscale(view), up.upscale(np.ascontiguousarray(view)))


@needs_kernel
def test_flat_colours_stay_flat_at_every_depth():
    for dtype, value in ((np.uint8, (200, 40, 90)), (np.uint16, (51000, 9000, 30000))):
        image = np.empty((12, 14, 3), dtype)
        image[...] = value
        out = Upscaler(create_model("Bicubic_s2")).upscale(image)
        assert np.abs(out.astype(np.int64) - np.array(value)).max() <= 1


def test_colour_plan_mixes_planes_back_to_rgb():
    plan = plan_color(3, 255.0)
    spec = plan.spec
    assert [spec.kind[p] for p in range(3)] == [MODEL, CHROMA, CHROMA] and plan.model_planes == 1
    # white: Y' - 16 = 219 (model input 1), chroma 0 -> RGB 255
    coef = np.array([[spec.coef[p][k] for k in range(3)] for p in range(3)])
    mat = np.array([[spec.mat[k][p] for p in range(3)] for k in range(3)])
    planes = coef @ np.array([255.0, 255.0, 255.0])
    assert np.allclose(planes, [1.0, 0.0, 0.0], atol=1e-5)  # float32 coefficients
    assert np.allclose(mat @ planes, [255.0] * 3, atol=1e-4)
    deep = plan_color(4, 65535.0, color="rgb", model_kind=PRECOMPUTED)
    assert deep.model_planes == 3 and deep.spec.kind[3] == CHROMA


@needs_kernel
def test_bad_arrays_are_clear_errors():
    up = Upscaler("Bicubic_s2")
    with pytest.raises(Exception, match="uint8 or uint16"):
        up.upscale(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(Exception, match=r"\(H, W, 3\)"):
        up.upscale(np.zeros((4, 4, 2), np.uint8))
