"""The bicubic start of ESPCN and eSR-CNN: flat greys pass through, edges start as bicubic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgesr import EdgesrError, create_model
from edgesr.metrics import psnr
from edgesr.train import TrainConfig
from edgesr.warm_start import bicubic_phase_filters, bicubic_start


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_full_support_phase_filters_are_torch_bicubic(scale):
    weights = bicubic_phase_filters(scale, taps=5, a=-0.75)[:, None]
    assert torch.allclose(weights.sum(dim=(1, 2, 3)), torch.ones(scale * scale))
    image = torch.rand(1, 1, 20, 20, generator=torch.Generator().manual_seed(scale))
    ours = F.pixel_shuffle(F.conv2d(image, weights, padding=2), scale)
    reference = F.interpolate(image, scale_factor=scale, mode="bicubic", align_corners=False)
    inner = slice(3 * scale, -3 * scale)
    assert torch.allclose(ours[..., inner, inner], reference[..., inner, inner], atol=1e-5)


@pytest.mark.parametrize("model_id", ["ESPCN_s2_D4_S6", "ESPCN_s3_D0_S9", "eSR-CNN_s2_C4_D3_S9"])
def test_start_keeps_grey_levels_and_upscales_like_bicubic(model_id):
    model = create_model(model_id)
    rmse = bicubic_start(model, seed=0)
    assert rmse < 0.01
    scale = model.spec.scale
    with torch.no_grad():
        greys = torch.tensor([0.1, 0.35, 0.6, 0.9])
        flat = model(greys[:, None, None, None].expand(-1, 1, 9, 9))[..., 3 * scale:-3 * scale, 3 * scale:-3 * scale]
        assert torch.allclose(flat.mean(dim=(1, 2, 3)), greys, atol=0.02)
        yy, xx = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 24), indexing="ij")
        smooth = (0.5 + 0.3 * torch.sin(6 * xx) * torch.cos(4 * yy))[None, None]
        ours = model(smooth)[..., 2 * scale:-2 * scale, 2 * scale:-2 * scale]
        reference = F.interpolate(smooth, scale_factor=scale, mode="bicubic", align_corners=False)
        reference = reference[..., 2 * scale:-2 * scale, 2 * scale:-2 * scale]
    assert psnr(ours[0, 0].numpy(), reference[0, 0].numpy(), peak=1.0) > 40


def test_start_is_seeded_and_rejects_other_families():
    a, b = create_model("ESPCN_s2_D0_S9"), create_model("ESPCN_s2_D0_S9")
    bicubic_start(a, seed=3)
    bicubic_start(b, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    with pytest.raises(EdgesrError, match="bicubic start supports eSR-CNN, ESPCN, not eSR-TM"):
        bicubic_start(create_model("eSR-TM_s2_K3_C2"))


def test_config_resolves_and_checks_the_start():
    assert TrainConfig("ESPCN_s2_D4_S6").init == "bicubic"
    assert TrainConfig("eSR-TM_s2_K3_C2").init == "paper"
    assert TrainConfig("FSRCNN_s2_D6_S1_M1").init == "paper"
    assert TrainConfig.from_dict({"model_id": "ESPCN_s2_D4_S6"}).init == "paper"  # saved before init existed
    with pytest.raises(EdgesrError, match="supports eSR-CNN, ESPCN only"):
        TrainConfig("eSR-MAX_s2_K3_C2", init="bicubic")
    with pytest.raises(EdgesrError, match="init must be auto, paper, bicubic or a weight file"):
        TrainConfig("ESPCN_s2_D4_S6", init="zeros")
