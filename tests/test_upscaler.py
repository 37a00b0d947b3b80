"""Upscaler: colour handling, depths, layouts and borders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgesr import EdgesrError, Upscaler, create_model
from edgesr.imaging import rgb_to_ycbcr

rng = np.random.default_rng(1)


@pytest.mark.parametrize("shape", [(9, 7), (9, 7, 1), (9, 7, 3), (9, 7, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_layout_and_depth_are_kept(shape, dtype):
    image = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    out = Upscaler("eSR-MAX_s3_K3_C2").upscale(image)
    assert out.dtype == dtype and out.shape == (27, 21, *shape[2:])


def test_flat_colour_stays_flat():
    image = np.empty((6, 8, 3), np.uint8)
    image[...] = (200, 40, 90)
    out = Upscaler("Bicubic_s2").upscale(image)
    assert np.abs(out.astype(int) - (200, 40, 90)).max() <= 1


def test_gray_image_goes_through_the_model_as_its_own_luma():
    gray = rng.integers(0, 256, (10, 12)).astype(np.uint8)
    model = create_model("eSR-TM_s2_K3_C2")
    out = Upscaler(model, border="zero").upscale(gray)
    with torch.no_grad():
        expected = model(torch.from_numpy(gray / 255.0).float()[None, None]).clamp(0, 1)[0, 0] * 255
    assert np.abs(out.astype(float) - expected.numpy()).max() <= 0.5 + 1e-3


def test_colour_luma_goes_through_the_model_and_chroma_through_bicubic():
    rgb = rng.integers(90, 160, (8, 8, 3)).astype(np.uint8)  # mid-range: no clipping to the RGB cube
    up_model = Upscaler("eSR-MAX_s2_K3_C4", pretrained=False)
    up_bicubic = Upscaler("Bicubic_s2")
    y_model = rgb_to_ycbcr(up_model.upscale(rgb).astype(float))
    y_bicubic = rgb_to_ycbcr(up_bicubic.upscale(rgb).astype(float))
    # Same chroma (bicubic in both), different luma (model vs bicubic); rounding to 8 bits adds < 1.
    assert np.abs(y_model[..., 1:] - y_bicubic[..., 1:]).mean() < 1.0
    assert np.abs(y_model[..., 0] - y_bicubic[..., 0]).mean() > 2.0


def test_replicate_border_makes_bicubic_match_interpolation_at_the_edges():
    gray = rng.random((10, 9)).astype(np.float32) * 219 + 16
    ours = Upscaler("Bicubic_s2").upscale_luma(gray)
    # Our kernel is Keys a = -0.5; build the same with a clamped border through F.pad.
    model = create_model("Bicubic_s2")
    padded = F.pad(torch.from_numpy((gray - 16) / 219)[None, None], (5, 5, 5, 5), mode="replicate")
    with torch.no_grad():
        expected = model(padded)[0, 0, 10:-10, 10:-10].clamp(0, 1) * 219 + 16
    np.testing.assert_allclose(ours, expected.numpy(), atol=1e-4)
    assert abs(ours[0, 0] - gray[0, 0]) < 20  # no dark border


def test_rgb_mode_runs_the_model_per_channel():
    rgb = rng.integers(0, 256, (5, 6, 3)).astype(np.uint8)
    model = create_model("eSR-TM_s2_K3_C2")
    out = Upscaler(model, color="rgb").upscale(rgb)
    for channel in range(3):
        assert np.array_equal(out[..., channel], Upscaler(model).upscale(rgb[..., channel]))


def test_bad_options_are_clear_errors():
    with pytest.raises(EdgesrError, match="color mode"):
        Upscaler("Bicubic_s2", color="lab")
    with pytest.raises(EdgesrError, match="float64"):
        Upscaler("Bicubic_s2").upscale(np.zeros((4, 4)))


@pytest.mark.parametrize("model_id", ["Bicubic_s3", "eSR-TM_s2_K7_C2", "FSRCNN_s2_D6_S1_M1"])
def test_one_pixel_images_upscale(model_id):
    out = Upscaler(model_id, pretrained=False).upscale(np.full((1, 1, 3), 100, np.uint8))
    scale = int(model_id.split("_s")[1][0])
    assert out.shape == (scale, scale, 3)


def test_an_id_that_ships_runs_its_shipped_weights_like_the_cli():
    from edgesr.engine.fused import FusedBackend
    from edgesr.models import load_model

    up = Upscaler("eSR-TM_s2_K7_C16")
    assert isinstance(up.backend, FusedBackend)
    lr = np.random.default_rng(0).integers(0, 256, (9, 7), dtype=np.uint8)
    untrained = Upscaler("eSR-TM_s2_K7_C16", pretrained=False)
    assert not np.array_equal(up.upscale(lr), untrained.upscale(lr))
    assert np.array_equal(up.upscale(lr), Upscaler(load_model("eSR-TM_s2_K7_C16")).upscale(lr))


def test_an_id_that_ships_nothing_needs_weights_or_an_explicit_untrained_network():
    with pytest.raises(EdgesrError, match="no shipped weights for eSR-TM_s2_K3_C1.*pretrained=False"):
        Upscaler("eSR-TM_s2_K3_C1")
    assert Upscaler("eSR-TM_s2_K3_C1", pretrained=False).model_id == "eSR-TM_s2_K3_C1"


def test_weights_and_pretrained_go_with_an_id_not_a_module():
    from edgesr.models import create_model

    with pytest.raises(EdgesrError, match="not with a built module"):
        Upscaler(create_model("Bicubic_s2"), pretrained=False)
