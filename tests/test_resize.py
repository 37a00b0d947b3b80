"""edgesr.resize: MATLAB imresize (bicubic, antialiased downscaling, symmetric borders)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgesr.resize import contributions, downscale, imresize


def test_downscale_by_two_matches_hand_computed_matlab_values():
    # Output 1 sits at u = 1.5 (1-based); the kernel is 0.5 * cubic(0.5 d) for d = u - index, taps
    # at d = +-0.5, +-1.5, +-2.5, +-3.5 weigh .43359375, .11328125, -.03515625, -.01171875; the
    # mirror folds indices 0, -1, -2 onto 1, 2, 3 and 5 onto 4, so
    # y1 = .546875 a + .3984375 b + .1015625 c - .046875 d  (MATLAB prints 1.4609 3.5391).
    out = imresize(np.array([[1.0, 2.0, 3.0, 4.0]]), 0.5)
    assert out.shape == (1, 2)
    np.testing.assert_allclose(out[0], [1.4609375, 3.5390625], atol=1e-12)


def test_downscale_weights_of_one_output_are_the_hand_computed_ones():
    for position, expected in enumerate([0.546875, 0.3984375, 0.1015625, -0.046875]):
        impulse = np.zeros((1, 4))
        impulse[0, position] = 1.0
        assert imresize(impulse, 0.5)[0, 0] == pytest.approx(expected, abs=1e-12)


def test_upscale_by_two_matches_hand_computed_value():
    # u = 0.75: cubic(0.25) = .8671875 on x1, cubic(0.75) = .2265625 on x0 -> mirrored x1,
    # cubic(1.25) = -.0703125 on x2, cubic(1.75) = -.0234375 on x(-1) -> mirrored x2.
    out = imresize(np.array([[1.0, 2.0, 3.0, 4.0]]), 2.0)
    assert out.shape == (2, 8)
    assert out[0, 0] == pytest.approx(0.8671875 + 0.2265625 - 2 * 0.0703125 - 2 * 0.0234375, abs=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_interior_equals_torch_antialiased_bicubic(scale):
    rng = np.random.default_rng(scale)
    image = rng.uniform(0, 255, size=(12 * scale, 15 * scale))
    ours = imresize(image, 1.0 / scale)
    theirs = torch.nn.functional.interpolate(torch.from_numpy(image)[None, None], scale_factor=1.0 / scale,
                                             mode="bicubic", antialias=True)[0, 0].numpy()
    assert ours.shape == theirs.shape == (12, 15)
    np.testing.assert_allclose(ours[3:-3, 3:-3], theirs[3:-3, 3:-3], atol=1e-9)


def test_borders_mirror_the_image_symmetrically():
    scale, pad = 3, 12  # padding by a multiple of the scale keeps the sampling grid aligned
    image = np.random.default_rng(0).uniform(0, 255, size=(18, 21))
    padded = np.pad(image, pad, mode="symmetric")  # ... b a | a b ... as MATLAB's border rule
    from_padded = imresize(padded, 1.0 / scale)[pad // scale : -pad // scale, pad // scale : -pad // scale]
    np.testing.assert_allclose(imresize(image, 1.0 / scale), from_padded, atol=1e-9)


@pytest.mark.parametrize("scale", [0.37, 0.5, 2.0 / 3.0, 1.5, 2.5])
def test_constant_image_stays_constant_at_any_factor(scale):
    out = imresize(np.full((17, 23, 3), 42.0), scale)
    assert out.shape == (int(np.ceil(17 * scale)), int(np.ceil(23 * scale)), 3)
    np.testing.assert_allclose(out, 42.0, atol=1e-9)


def test_every_output_weight_row_sums_to_one():
    _, weights = contributions(29, 11, 11 / 29)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)


def test_numpy_channels_last_equals_torch_channels_first():
    image = np.random.default_rng(1).uniform(0, 255, size=(20, 14, 3))
    from_numpy = imresize(image, 0.5)
    from_torch = imresize(torch.from_numpy(image).permute(2, 0, 1).contiguous(), 0.5)
    assert isinstance(from_torch, torch.Tensor)
    np.testing.assert_allclose(from_numpy, from_torch.permute(1, 2, 0).numpy(), atol=1e-9)


def test_output_size_argument_sets_the_shape():
    assert imresize(np.zeros((10, 10)), size=(4, 7)).shape == (4, 7)


def test_float_in_float_out_without_rounding_or_clipping():
    image = np.array([[0.0, 255.0, 0.0, 255.0]] * 4)
    out = imresize(image, 0.5)
    assert out.dtype == np.float64
    assert out.min() < 0.0 or out.max() > 255.0 or not np.allclose(out, np.rint(out))


def test_downscale_torch_method_is_torch_interpolate():
    image = np.random.default_rng(2).uniform(0, 255, size=(12, 18, 3))
    out = downscale(image, 3, method="torch")
    expected = torch.nn.functional.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None], size=(4, 6),
                                               mode="bicubic", antialias=True)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_bad_factor_is_rejected():
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4)), 0.0)
    with pytest.raises(ValueError):
        downscale(np.zeros((4, 4)), 2, method="lanczos")
