"""The seven families: shapes, parameter counts, initialisation, official-weight compatibility."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgesr import count_parameters, create_model, paper_grid
from edgesr.models import ModelSpec

ONE_PER_FAMILY = ["Bicubic_s{s}", "eSR-MAX_s{s}_K3_C2", "eSR-TM_s{s}_K5_C3", "eSR-TR_s{s}_K7_C2",
                  "eSR-CNN_s{s}_C2_D3_S6", "ESPCN_s{s}_D0_S3", "ESPCN_s{s}_D4_S6", "FSRCNN_s{s}_D6_S3_M1"]


def expected_parameters(spec: ModelSpec) -> int:
    """Parameter counts worked out from the layer list of each family."""
    s, p = spec.scale, spec.params
    if spec.family in ("eSR-MAX", "eSR-TM", "eSR-TR"):
        factor = {"eSR-MAX": 1, "eSR-TM": 2, "eSR-TR": 3}[spec.family]
        return factor * s * s * p["C"] * p["K"] ** 2
    if spec.family == "eSR-CNN":
        d, w, c = p["D"], p["S"], p["C"]
        return (25 * d + d) + (9 * d * w + w) + 9 * w * 2 * s * s * c
    if spec.family == "ESPCN":
        d, w = p["D"], p["S"]
        first = (25 * d + d) + (9 * d * w + w) if d else 9 * w + w
        return first + 9 * w * s * s + s * s
    if spec.family == "FSRCNN":
        d, w, m = p["D"], p["S"], p["M"]
        return (25 * d + d + 1) + (d * w + w + 1) + m * (9 * w * w + w + 1) + (w * d + d + 1) + 81 * d + 1
    return (4 * s + 3) ** 2  # Bicubic: the stored (4s+3)^2 kernel


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("template", ONE_PER_FAMILY)
def test_output_is_scale_times_input_for_odd_sizes(template, scale):
    model = create_model(template.format(s=scale))
    out = model(torch.rand(2, 1, 7, 5))
    assert out.shape == (2, 1, 7 * scale, 5 * scale)


@pytest.mark.parametrize("template", ONE_PER_FAMILY)
def test_one_pixel_input_works(template):
    assert create_model(template.format(s=3))(torch.rand(1, 1, 1, 1)).shape == (1, 1, 3, 3)


def test_parameter_counts_follow_the_layer_formulas_for_the_whole_grid():
    for model_id in paper_grid():
        spec = ModelSpec.parse(model_id)
        assert count_parameters(create_model(spec)) == expected_parameters(spec), model_id


def test_parameter_counts_equal_the_papers_table(reference_dir):
    table = json.loads((reference_dir / "paper_results_set5_set14.json").read_text())
    for model_id in paper_grid():
        if not model_id.startswith("Bicubic"):
            assert count_parameters(create_model(model_id)) == table[model_id]["parameters"], model_id


@pytest.mark.parametrize("family", ["eSR-MAX", "eSR-TM", "eSR-TR"])
def test_fresh_one_layer_model_starts_as_nearest_neighbour_upscaler(family):
    # Xavier + centre tap of 1: with a constant image the centre tap dominates every channel.
    model = create_model(f"{family}_s2_K3_C4")
    weight = model.filter.weight
    assert torch.all(weight[:, 0, 1, 1] == 1.0)
    assert weight[:, 0, 0, 0].std() > 0  # the rest is random (Xavier)


def test_create_model_returns_eval_mode_and_keeps_the_spec():
    model = create_model("ESPCN_s2_D4_S6")
    assert not model.training and model.spec.id == "ESPCN_s2_D4_S6"


# --- an independent re-implementation of the official forward passes (numpy, explicit loops) ---

def np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """'same' zero-padded correlation: x (Cin, H, W), w (Cout, Cin, k, k) -> (Cout, H, W)."""
    k = w.shape[-1]
    r = k // 2
    padded = np.pad(x, ((0, 0), (r, r), (r, r)))
    height, width = x.shape[1:]
    out = np.zeros((w.shape[0], height, width))
    for i in range(k):
        for j in range(k):
            out += np.einsum("oc,chw->ohw", w[:, :, i, j], padded[:, i:i + height, j:j + width])
    return out if b is None else out + b[:, None, None]


def np_shuffle(x: np.ndarray, s: int) -> np.ndarray:
    """PixelShuffle: channel c*s*s + i*s + j -> output channel c at sub-pixel (i, j)."""
    channels, height, width = x.shape
    out = np.zeros((channels // (s * s), height * s, width * s))
    for c in range(channels // (s * s)):
        for i in range(s):
            for j in range(s):
                out[c, i::s, j::s] = x[c * s * s + i * s + j]
    return out


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def reference_forward(spec: ModelSpec, state: dict, x: np.ndarray) -> np.ndarray:
    st = {k: v.double().numpy() for k, v in state.items()}
    s = spec.scale
    if spec.family in ("eSR-MAX", "eSR-TM", "eSR-TR"):
        y = np_shuffle(np_conv(x[None], st["filter.weight"]), s)
        c = spec.C
        if spec.family == "eSR-MAX":
            return y.max(axis=0)
        if spec.family == "eSR-TM":
            return (y[:c] * np_softmax(y[c:])).sum(0)
        return (y[:c] * np_softmax(y[c:2 * c] * y[2 * c:])).sum(0)
    if spec.family == "eSR-CNN":
        h = np.tanh(np_conv(x[None], st["filter.0.weight"], st["filter.0.bias"]))
        h = np.tanh(np_conv(h, st["filter.2.weight"], st["filter.2.bias"]))
        y = np_shuffle(np_conv(h, st["filter.4.weight"]), s)
        c = spec.C
        return (y[:c] * np_softmax(y[c:] * y[c:])).sum(0)
    if spec.family == "ESPCN":
        h = x[None]
        names = sorted({k.split(".")[1] for k in st}, key=int)
        for n, name in enumerate(names):
            h = np_conv(h, st[f"net.{name}.weight"], st[f"net.{name}.bias"])
            if n < len(names) - 1:
                h = np.tanh(h)
        return 1 / (1 + np.exp(-np_shuffle(h, s)[0]))
    if spec.family == "FSRCNN":
        h = x[None]
        convs = sorted({int(k.split(".")[1]) for k in st if k.endswith(".bias")})
        for index in convs[:-1]:
            h = np_conv(h, st[f"net.{index}.weight"], st[f"net.{index}.bias"])
            slope = st[f"net.{index + 1}.weight"][0]
            h = np.where(h > 0, h, slope * h)
        # Transposed conv of stride s as zero insertion + full correlation with the flipped kernel.
        last = convs[-1]
        w, b = st[f"net.{last}.weight"], st[f"net.{last}.bias"]
        pad = (9 - 1 - s) // 2 + 1
        height, width = h.shape[1:]
        up = np.zeros((h.shape[0], (height - 1) * s + 1, (width - 1) * s + 1))
        up[:, ::s, ::s] = h
        full = 9 - 1 - pad
        up = np.pad(up, ((0, 0), (full, full + (s + 1) % 2), (full, full + (s + 1) % 2)))
        flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        out = np.zeros((1, height * s, width * s))
        for i in range(9):
            for j in range(9):
                out += np.einsum("oc,chw->ohw", flipped[:, :, i, j], up[:, i:i + height * s, j:j + width * s])
        return out[0] + b[0]
    raise AssertionError(spec.family)


REFERENCE_IDS = ["eSR-MAX_s2_K3_C1", "eSR-MAX_s4_K7_C8", "eSR-TM_s2_K7_C16", "eSR-TM_s3_K5_C4",
                 "eSR-TR_s2_K7_C12", "eSR-TR_s3_K5_C8", "eSR-CNN_s2_C4_D3_S9", "eSR-CNN_s4_C8_D9_S6",
                 "ESPCN_s2_D0_S9", "ESPCN_s4_D16_S12", "FSRCNN_s2_D56_S12_M4", "FSRCNN_s3_D32_S6_M1"]


@pytest.mark.parametrize("model_id", REFERENCE_IDS)
def test_official_file_loads_strictly_and_matches_the_formulas(reference_dir, model_id):
    path = reference_dir / "weights" / f"{model_id}.model"
    model = create_model(model_id, weights=path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    x = np.random.default_rng(0).random((9, 11))
    expected = reference_forward(model.spec, state, x)
    with torch.no_grad():
        got = model.double()(torch.from_numpy(x)[None, None])[0, 0].numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_official_bicubic_file_is_the_same_transposed_convolution(reference_dir, scale):
    path = reference_dir / "weights" / f"Bicubic_s{scale}.model"
    model = create_model(f"Bicubic_s{scale}", weights=path)
    kernel = torch.load(path, map_location="cpu", weights_only=True)["net.weight"].double()
    x = torch.rand(1, 1, 9, 8, dtype=torch.float64)
    # What the official ConvTranspose2d computes, output sized s*H x s*W:
    size = 4 * scale + 3
    padding = (3 * scale + 4) // 2
    expected = F.conv_transpose2d(x, kernel, stride=scale, padding=padding,
                                  output_padding=2 * padding - 3 * scale - 3)
    assert expected.shape[-2:] == (9 * scale, 8 * scale) and kernel.shape[-1] == size
    torch.testing.assert_close(model.double()(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 4])
def test_official_even_scale_bicubic_kernels_are_our_kernel(reference_dir, scale):
    from edgesr.models.classic import bicubic_kernel

    official = torch.load(reference_dir / "weights" / f"Bicubic_s{scale}.model", map_location="cpu",
                          weights_only=True)["net.weight"][0, 0].float()
    ours = bicubic_kernel(scale)
    assert torch.allclose(official / official.sum(), ours / ours.sum(), atol=2e-4)


def test_list_models_filters_the_shipped_ids_like_the_grid():
    from edgesr.models import list_models
    from edgesr.weights import shipped_manifest

    shipped = list_models(shipped=True)
    assert shipped == list(shipped_manifest()["models"]) and set(shipped) <= set(paper_grid())
    assert list_models("ESR-max", scale=3, shipped=True) == [i for i in shipped if i.startswith("eSR-MAX_s3_")]
    assert len(list_models("eSR-MAX", scale=3)) == 48


def test_list_models_names_an_unknown_family_instead_of_matching_nothing():
    from edgesr.errors import EdgesrError
    from edgesr.models import list_models

    with pytest.raises(EdgesrError, match="unknown family 'eSR-XL'; choose from Bicubic, eSR-MAX"):
        list_models("eSR-XL")
