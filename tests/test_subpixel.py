"""engine/subpixel.py: FSRCNN's strided deconvolution as a convolution + pixel shuffle computes the
same function (what the OpenVINO backend exports)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgesr.engine.subpixel import deconv_as_subpixel, with_subpixel_output
from edgesr.models import create_model


@pytest.mark.parametrize("model_id", ["FSRCNN_s2_D56_S12_M4", "FSRCNN_s3_D19_S6_M1", "FSRCNN_s4_D44_S12_M4",
                                      "FSRCNN_s2_D6_S1_M1"])
def test_rewritten_fsrcnn_equals_the_original(model_id):
    torch.manual_seed(0)
    model = create_model(model_id).eval()
    with torch.no_grad():
        model.net[-1].bias.fill_(0.25)  # a bias the rewrite must carry to every phase
    rewritten = with_subpixel_output(model)
    assert isinstance(rewritten.net[-1][1], nn.PixelShuffle)
    assert isinstance(model.net[-1], nn.ConvTranspose2d)  # the original is left alone
    x = torch.rand(2, 1, 23, 30)
    with torch.inference_mode():
        expected, got = model(x), rewritten(x)
    assert got.shape == expected.shape == (2, 1, 23 * model.spec.scale, 30 * model.spec.scale)
    assert float((got - expected).abs().max()) <= 1e-5


def test_other_families_are_returned_unchanged():
    model = create_model("ESPCN_s2_D4_S6")
    assert with_subpixel_output(model) is model


def test_deconvolution_whose_output_is_not_s_times_the_input_is_not_rewritten():
    assert deconv_as_subpixel(nn.ConvTranspose2d(8, 1, 9, stride=2, padding=4)) is None  # 2n - 1 pixels
    assert deconv_as_subpixel(nn.ConvTranspose2d(8, 2, 9, stride=2, padding=4, output_padding=1)) is None
