"""`edgesr explain`: the filter layout, spectra, orientations, template maps and written views."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from edgesr import EdgesrError, create_model
from edgesr.cli import app
from edgesr.explain import filter_bank, frequency_response, orientation, siemens_star, template_maps
from edgesr.explain_views import explain


def test_filter_bank_follows_the_pixel_shuffle_channel_layout():
    model = create_model("eSR-TR_s2_K3_C2")
    s, c = 2, 2
    with torch.no_grad():
        for f in range(3):
            for channel in range(c):
                for phase in range(s * s):
                    model.filter.weight[(f * c + channel) * s * s + phase] = 100 * f + 10 * channel + phase
    bank = filter_bank(model)
    assert list(bank) == ["value", "query", "key"]
    assert bank["query"].shape == (2, 4, 3, 3)
    assert np.all(bank["key"][1, 3] == 213) and np.all(bank["value"][0, 2] == 2)


def test_a_filter_of_one_phase_drives_that_output_position():
    # Only value filter (c=0, phase (0, 1)) is non-zero: only output pixels (2y, 2x+1) respond.
    model = create_model("eSR-MAX_s2_K3_C1")
    with torch.no_grad():
        model.filter.weight.zero_()
        model.filter.weight[1, 0, 1, 1] = 1.0
    assert np.all(filter_bank(model)["value"][0, 1] == model.filter.weight[1, 0].detach().numpy())
    out = model(torch.ones(1, 1, 4, 4))[0, 0]
    assert torch.all(out[0::2, 1::2] == 1) and torch.all(out[1::2, :] == 0) and torch.all(out[0::2, 0::2] == 0)


def test_spectrum_of_a_single_tap_is_flat():
    delta = np.zeros((1, 5, 5))
    delta[0, 2, 2] = 0.5
    assert np.allclose(frequency_response(delta), 0.5)


def test_orientation_finds_the_edges_a_derivative_filter_detects():
    along_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)   # Sobel: responds to vertical edges
    along_y = along_x.T                                                # horizontal edges
    diagonal = np.array([[0, 1, 2], [-1, 0, 1], [-2, -1, 0]], float)  # grows towards the top right
    edge, anisotropy = orientation(np.stack([along_x, along_y, diagonal]))
    assert edge[0] == pytest.approx(90, abs=1e-6) and edge[1] == pytest.approx(0, abs=1e-6)
    assert edge[2] == pytest.approx(135, abs=5)  # across x = y (twin peaks either side of it)
    assert np.all(anisotropy > 0.5)
    _, isotropic = orientation(np.array([[[0, -1, 0], [-1, 4, -1], [0, -1, 0]]], float))
    assert isotropic[0] < 0.1


def test_template_weights_reproduce_the_model_output():
    torch.manual_seed(0)
    model = create_model("eSR-TM_s2_K3_C4")
    lr = siemens_star(24)
    maps = template_maps(model, lr)
    assert maps.weights.shape == (4, 48, 48) and np.allclose(maps.weights.sum(0), 1.0)
    assert np.array_equal(maps.winner, maps.weights.argmax(0))
    assert np.allclose(maps.confidence, maps.weights.max(0))
    x = torch.from_numpy(((lr - 16) / 219).astype(np.float32))[None, None]
    value = torch.nn.functional.pixel_shuffle(model.filter(x), 2)[0, :4].detach().double().numpy()
    expected = 16 + 219 * np.clip((value * maps.weights).sum(0), 0, 1)
    assert np.allclose(maps.output, expected, atol=1e-4)


def test_max_winner_is_the_largest_filter_response():
    model = create_model("eSR-MAX_s2_K3_C3")
    lr = siemens_star(16)
    maps = template_maps(model, lr)
    x = torch.from_numpy(((lr - 16) / 219).astype(np.float32))[None, None]
    responses = torch.nn.functional.pixel_shuffle(model.filter(x), 2)[0].detach().numpy()
    assert np.array_equal(maps.winner, responses.argmax(0))
    top = np.sort(responses, axis=0)
    assert np.allclose(maps.confidence, top[-1] - top[-2], atol=1e-6)


def test_explain_writes_every_view_and_links_them(tmp_path):
    rng = np.random.default_rng(0)
    image = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(image)
    report = explain(create_model("eSR-TR_s2_K5_C3"), tmp_path / "out", image=image)
    expected = {"filters_value", "filters_query", "filters_key", "spectrum_value", "spectrum_query", "spectrum_key",
                "orientation", "orientation_csv", "input", "output", "winner", "confidence", "overlay", "weights"}
    assert set(report.files) == expected
    page = report.index.read_text()
    for key, path in report.files.items():
        assert path.stat().st_size > 300, key
        assert path.name in page, key
    with Image.open(report.files["output"]) as output:
        assert output.size == (112, 80)  # the image is the LR input: x2
    assert len(report.orientation) == 3 * 3 * 4  # parts x channels x phases
    assert (tmp_path / "out" / "orientation.csv").read_text().count("\n") == 1 + 36


def test_explain_eSR_CNN_shows_template_maps_only(tmp_path):
    report = explain(create_model("eSR-CNN_s2_C2_D3_S6"), tmp_path)
    assert "winner" in report.files and not any(k.startswith("filters_") for k in report.files)


def test_explain_refuses_families_without_templates(tmp_path):
    with pytest.raises(EdgesrError, match="ESPCN_s2_D4_S6: explain supports"):
        explain("ESPCN_s2_D4_S6", tmp_path)


def test_cli_explain_with_weights(tmp_path):
    from edgesr.weights import save_weights

    weights = save_weights(create_model("eSR-MAX_s3_K3_C2"), tmp_path / "w.safetensors")
    result = CliRunner().invoke(app, ["explain", "eSR-MAX_s3_K3_C2", "--weights", str(weights),
                                      "--out", str(tmp_path / "views")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "views" / "index.html").is_file() and (tmp_path / "views" / "winner.png").is_file()


def test_the_analysis_draws_nothing_and_writes_nothing():
    import ast
    from pathlib import Path

    import edgesr.explain

    tree = ast.parse(Path(edgesr.explain.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"PIL", "edgesr.atomic", "edgesr.explain_views", "html", "csv"}
