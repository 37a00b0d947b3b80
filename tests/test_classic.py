"""Bicubic as one conv + PixelShuffle equals upsample-then-filter and standard bicubic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from edgesr.models import ModelSpec
from edgesr.models.classic import Bicubic, bicubic_kernel
from edgesr.resize import cubic


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_conv_plus_pixel_shuffle_equals_upsample_then_filter(scale):
    model = Bicubic(ModelSpec.parse(f"Bicubic_s{scale}")).double()
    x = torch.rand(2, 1, 13, 10, dtype=torch.float64)
    efficient, textbook = model(x), model.upsample_then_filter(x)
    assert efficient.shape == textbook.shape == (2, 1, 13 * scale, 10 * scale)
    assert (efficient - textbook).abs().max() <= 1e-6


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_interior_equals_torch_bicubic_interpolation(scale):
    # torch (like OpenCV) uses Keys' a = -0.75; our kernel takes the same a.
    model = Bicubic(ModelSpec.parse(f"Bicubic_s{scale}"), a=-0.75).double()
    x = torch.rand(1, 1, 16, 15, dtype=torch.float64)
    ours = model(x)
    theirs = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    m = 3 * scale  # zero-padded borders differ from torch's clamped borders over 2 LR pixels
    torch.testing.assert_close(ours[..., m:-m, m:-m], theirs[..., m:-m, m:-m], rtol=0, atol=1e-6)  # torch computes s=3 source coordinates in float32


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_replicate_padded_input_equals_torch_bicubic_everywhere(scale):
    model = Bicubic(ModelSpec.parse(f"Bicubic_s{scale}"), a=-0.75).double()
    x = torch.rand(1, 1, 9, 12, dtype=torch.float64)
    c = 4
    ours = model(F.pad(x, (c, c, c, c), mode="replicate"))[..., c * scale:-c * scale, c * scale:-c * scale]
    theirs = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)  # torch computes s=3 source coordinates in float32


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_default_kernel_matches_pillow_bicubic_in_the_interior(scale):
    # Pillow's BICUBIC is Keys' a = -0.5 (as MATLAB), our default.
    x = np.random.default_rng(scale).random((12, 14)).astype(np.float32)
    pillow = np.asarray(Image.fromarray(x, mode="F").resize((14 * scale, 12 * scale), Image.BICUBIC))
    ours = Bicubic(ModelSpec.parse(f"Bicubic_s{scale}"))(torch.from_numpy(x)[None, None])[0, 0].numpy()
    m = 3 * scale
    np.testing.assert_allclose(ours[m:-m, m:-m], pillow[m:-m, m:-m], atol=2e-5)


def test_kernel_taps_sum_to_one_per_phase():
    for scale in (2, 3, 4):
        kernel = bicubic_kernel(scale, dtype=torch.float64)
        rows = kernel.sum(1) / kernel.sum(1).sum() * scale
        for phase in range(scale):
            assert rows[phase::scale].sum().item() == pytest.approx(1.0, abs=1e-12)


def test_cubic_kernel_values_worked_by_hand():
    # a = -0.5: w(0) = 1, w(0.5) = 0.5625, w(1) = 0, w(1.5) = -0.0625, w(2) = 0.
    values = cubic(np.array([0.0, 0.5, 1.0, 1.5, 2.0]))
    np.testing.assert_allclose(values, [1.0, 0.5625, 0.0, -0.0625, 0.0], atol=1e-15)


def test_bicubic_weights_are_not_trainable():
    model = Bicubic(ModelSpec.parse("Bicubic_s2"))
    assert not any(p.requires_grad for p in model.parameters())
