"""Every family through every fact it declares (`edgesr.models.Family`), checked against the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgesr.engine import make_backend, native
from edgesr.engine.fused import supports
from edgesr.models import FAMILIES, ModelSpec, create_model, family_of, paper_grid
from edgesr.models.spec import FAMILY_FIELDS
from edgesr.train import RECIPES
from noisy_models import noisy_model

#: A small id of every family at scales 2 and 3.
IDS = ["Bicubic_s2", "Bicubic_s3", "eSR-MAX_s2_K5_C3", "eSR-TM_s3_K3_C4", "eSR-TR_s2_K7_C2",
       "eSR-CNN_s3_C2_D3_S3", "ESPCN_s2_D4_S6", "ESPCN_s3_D0_S3", "FSRCNN_s2_D6_S3_M1", "FSRCNN_s3_D6_S1_M4"]


def random_model(model_id: str) -> torch.nn.Module:
    """Fresh init plus noise, in float64 (Bicubic keeps its kernel)."""
    return noisy_model(model_id, 0.3).double()


def test_every_family_of_the_id_grammar_has_its_facts():
    assert list(FAMILIES) == list(FAMILY_FIELDS)
    assert {model_id.split("_")[0] for model_id in IDS} == set(FAMILIES)
    assert all(FAMILIES[name].name == name for name in FAMILIES)


@pytest.mark.parametrize("model_id", IDS)
def test_context_is_the_reach_of_one_lr_pixel(model_id):
    model, spec = random_model(model_id), ModelSpec.parse(model_id)
    context, s, n = family_of(spec).context(spec), spec.scale, 21
    x = torch.rand(1, 1, n, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    changed = x.clone()
    changed[0, 0, n // 2, n // 2] += 1.0
    with torch.no_grad():
        moved = (model(changed) - model(x)).abs()[0, 0] > 1e-12
    rows, cols = np.nonzero(moved.numpy())
    reach = max(np.abs(rows // s - n // 2).max(), np.abs(cols // s - n // 2).max())
    assert context - 1 <= reach <= context  # never short (tiles stay exact), at most one pixel long


@pytest.mark.parametrize("model_id", IDS)
def test_macs_per_pixel_count_the_convolutions_the_forward_runs(model_id):
    # Imported here: it imports Triton, whose tests must set TRITON_INTERPRET first (collection).
    from torch.utils.flop_counter import FlopCounterMode

    model, spec = random_model(model_id).float(), ModelSpec.parse(model_id)
    h, w = 12, 10
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 1, h, w))
    assert family_of(spec).macs_per_pixel(spec) * h * w == counter.get_total_flops() // 2


@pytest.mark.parametrize("model_id", IDS)
def test_memory_per_pixel_holds_at_least_input_and_output_and_grows_with_width(model_id):
    spec = ModelSpec.parse(model_id)
    floats = family_of(spec).floats_per_pixel
    assert floats(spec) >= 1 + spec.scale**2
    if spec.params:
        wider = ModelSpec(spec.family, spec.scale, {k: v * 2 + 1 for k, v in spec.params.items()})
        assert floats(wider) > floats(spec)


@pytest.mark.parametrize("model_id", IDS)
def test_recipe_and_training_facts_match_the_model(model_id):
    family, model = family_of(model_id), create_model(model_id)
    trainable = any(p.requires_grad for p in model.parameters())
    assert family.learned == trainable == (family.recipe in RECIPES)
    assert family.pixel_training == hasattr(model, "forward_columns")
    if family.bicubic_start:
        from edgesr.warm_start import bicubic_start

        bicubic_start(model, iterations=5)  # refuses the families it does not support


@pytest.mark.parametrize("model_id", IDS)
def test_kernel_plan_matches_the_forward_where_the_kernel_runs(model_id):
    family, model = family_of(model_id), random_model(model_id).float()
    assert supports(model) == (family.kernel_mode is not None)
    if family.kernel_mode is None:
        assert family.kernel_weights is None
        return
    weight, pad = family.kernel_weights(model)
    assert weight.dtype == np.float32 and weight.ndim == 3 and len(pad) == 2
    if native.load() is None:
        pytest.skip("fused kernel could not be compiled")
    x = torch.rand(1, 1, 9, 11, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(make_backend("fused", model)(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("model_id", IDS)
def test_templates_recombine_into_the_output_and_parts_split_the_filters(model_id):
    family, model = family_of(model_id), random_model(model_id)
    spec = model.spec
    if family.parts:
        assert len(family.parts) * spec.scale**2 * spec.C == model.filter.weight.shape[0]
    if family.templates is None:
        assert not family.parts
        return
    x = torch.rand(2, 1, 6, 7, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        values, scores = family.templates(model, x)
        output = model(x)
    assert values.shape == (2, spec.C, 6 * spec.scale, 7 * spec.scale)
    combined = (values.amax(dim=1, keepdim=True) if scores is None
                else (values * torch.softmax(scores, dim=1)).sum(dim=1, keepdim=True))
    torch.testing.assert_close(combined, output)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_tiling_and_style_facts_are_stated(name):
    family = FAMILIES[name]
    marker, colour = family.style
    assert marker and colour.startswith("#") and len(colour) == 7
    assert isinstance(family.full_width_tiles, bool)
    assert len({f.style for f in FAMILIES.values()}) == len(FAMILIES)  # each family tells apart
    assert any(i.startswith(name + "_") for i in paper_grid())
