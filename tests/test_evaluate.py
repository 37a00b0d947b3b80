"""edgesr.evaluate and `edgesr eval`: the paper's protocol, tables, weights folders, reference check."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgesr.cli import app
from edgesr.errors import EdgesrError
from edgesr.evaluate import (
    PROTOCOLS,
    ModelEntry,
    evaluate,
    load_set,
    prepare_image,
    resolve_models,
)
from edgesr.results import compare_tables, read_table, write_table
from edgesr.imaging import write_image
from edgesr.metrics import psnr, ssim
from edgesr.models import create_model
from edgesr.weights import save_weights


def _smooth_rgb(seed: int, height: int, width: int) -> np.ndarray:
    """A smooth colour image (so upscalers do well) as uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / 7.0
    channels = [np.sin(x * rng.uniform(0.5, 1.5) + y * rng.uniform(0.5, 1.5) + c) for c in range(3)]
    return np.clip(np.rint(127.5 + 100 * np.stack(channels, -1)), 0, 255).astype(np.uint8)


@pytest.fixture
def tiny_set(tmp_path):
    folder = tmp_path / "Tiny"
    folder.mkdir()
    write_image(folder / "a.png", _smooth_rgb(0, 37, 42))
    write_image(folder / "b.png", _smooth_rgb(1, 48, 36)[..., 0])  # grayscale file
    return folder


def test_paper_protocol_maps_studio_luma_to_0_1_and_back_unrounded():
    paper = PROTOCOLS["paper"]
    np.testing.assert_allclose(paper.to_model(np.array([16.0, 125.5, 235.0])), [0.0, 0.5, 1.0], atol=1e-7)
    out = paper.from_model(torch.tensor([-0.1, 0.5001, 1.2]))
    np.testing.assert_allclose(out, [16.0, 16 + 219 * 0.5001, 235.0], atol=1e-4)


def test_standard_protocol_feeds_y_over_255_and_rounds_the_output():
    standard = PROTOCOLS["standard"]
    np.testing.assert_allclose(standard.to_model(np.array([0.0, 255.0])), [0.0, 1.0])
    np.testing.assert_array_equal(standard.from_model(torch.tensor([0.5, 1.3])), [128.0, 255.0])


def test_hr_is_mod_cropped_and_lr_is_float_in_paper_protocol(tiny_set):
    image = prepare_image(tiny_set / "a.png", 3, "paper")
    assert image.hr_y.shape == (36, 42) and image.lr_y.shape == (12, 14)
    assert not np.allclose(image.lr_y, np.rint(image.lr_y))


def test_standard_protocol_rounds_the_lr_rgb_to_8_bits(tiny_set):
    paper = prepare_image(tiny_set / "a.png", 2, "paper")
    standard = prepare_image(tiny_set / "a.png", 2, "standard")
    assert 0 < np.abs(paper.lr_y - standard.lr_y).max() <= 0.5 * 255 / 255 + 1e-9
    np.testing.assert_array_equal(paper.hr_y, standard.hr_y)


def test_gray_file_scores_like_rgb_with_equal_channels(tmp_path):
    gray = _smooth_rgb(5, 30, 30)[..., 1]
    (tmp_path / "g").mkdir()
    (tmp_path / "c").mkdir()
    write_image(tmp_path / "g" / "x.png", gray)
    write_image(tmp_path / "c" / "x.png", np.repeat(gray[..., None], 3, -1))
    a = evaluate(["Bicubic_s2"], [tmp_path / "g"]).table["Bicubic_s2"]
    b = evaluate(["Bicubic_s2"], [tmp_path / "c"]).table["Bicubic_s2"]
    assert a["psnr_g"] == pytest.approx(b["psnr_c"], abs=1e-9)
    assert a["ssim_g"] == pytest.approx(b["ssim_c"], abs=1e-12)


def test_table_rows_use_the_paper_column_names(tiny_set, tmp_path):
    other = tmp_path / "Other"
    other.mkdir()
    write_image(other / "c.png", _smooth_rgb(2, 40, 40))
    table = evaluate(["Bicubic_s2", "Bicubic_s3"], [tiny_set, other]).table
    assert list(table) == ["Bicubic_s2", "Bicubic_s3"]
    assert list(table["Bicubic_s2"]) == ["psnr_Tiny", "ssim_Tiny", "psnr_Other", "ssim_Other", "parameters"]
    bicubic = create_model("Bicubic_s2")
    assert table["Bicubic_s2"]["parameters"] == sum(p.numel() for p in bicubic.parameters())


def test_set_value_is_the_mean_of_per_image_values_computed_by_hand(tiny_set):
    result = evaluate(["Bicubic_s2"], [tiny_set], per_image=True, backend="torch")  # the reference forward
    model = create_model("Bicubic_s2")
    expected = []
    for name in ("a", "b"):
        image = prepare_image(tiny_set / f"{name}.png", 2)
        with torch.no_grad():
            out = model(torch.from_numpy((image.lr_y - 16) / 219).float()[None, None])[0, 0].double().numpy()
        sr = 16 + 219 * np.clip(out, 0, 1)
        expected.append((psnr(sr, image.hr_y, shave=2), ssim(sr, image.hr_y, shave=2)))
    assert [(r["image"], r["dataset"]) for r in result.per_image] == [("a", "Tiny"), ("b", "Tiny")]
    for row, (p, s) in zip(result.per_image, expected):
        assert (row["psnr"], row["ssim"]) == (pytest.approx(p, abs=1e-9), pytest.approx(s, abs=1e-12))
    assert result.table["Bicubic_s2"]["psnr_Tiny"] == pytest.approx(np.mean([p for p, _ in expected]))


def test_prepared_pairs_are_cached_per_scale_and_protocol(tiny_set):
    first = load_set(tiny_set, 2).images[0]
    assert load_set(tiny_set, 2).images[0] is first
    assert load_set(tiny_set, 3).images[0] is not load_set(tiny_set, 3, "standard").images[0]
    assert load_set(tiny_set, 3).images[0].lr_y.shape != first.lr_y.shape


def test_sets_larger_than_the_cache_are_streamed_with_the_same_results(tiny_set, monkeypatch):
    import edgesr.evaluate as ev

    cached = evaluate(["Bicubic_s2"], [tiny_set]).table
    ev.clear_cache()
    monkeypatch.setattr(ev, "CACHE_PIXELS", 100)
    assert load_set(tiny_set, 2).images[0] is not load_set(tiny_set, 2).images[0]
    assert evaluate(["Bicubic_s2"], [tiny_set]).table == cached


def test_edited_files_are_prepared_again(tiny_set):
    before = load_set(tiny_set, 2).images[0].hr_y.copy()
    write_image(tiny_set / "a.png", 255 - _smooth_rgb(0, 37, 42))
    os.utime(tiny_set / "a.png", ns=(1, 1))
    assert not np.allclose(load_set(tiny_set, 2).images[0].hr_y, before)


def test_batched_images_score_as_when_run_alone(tmp_path):
    # Two images of one shape go through a multi-layer model as one batch.
    (tmp_path / "pair").mkdir()
    (tmp_path / "alone").mkdir()
    write_image(tmp_path / "pair" / "a.png", _smooth_rgb(3, 32, 40))
    write_image(tmp_path / "pair" / "b.png", _smooth_rgb(4, 32, 40))
    write_image(tmp_path / "alone" / "b.png", _smooth_rgb(4, 32, 40))
    torch.manual_seed(0)
    model = create_model("ESPCN_s2_D8_S4")
    save_weights(model, tmp_path / "m.safetensors")
    entry = [ModelEntry("ESPCN_s2_D8_S4", tmp_path / "m.safetensors")]
    pair = evaluate(entry, [tmp_path / "pair"], per_image=True).per_image
    alone = evaluate(entry, [tmp_path / "alone"], per_image=True).per_image
    assert pair[1]["image"] == alone[0]["image"] == "b"
    assert pair[1]["psnr"] == pytest.approx(alone[0]["psnr"], abs=1e-6)


def test_a_better_model_scores_higher_than_a_worse_one(tiny_set, tmp_path):
    # Bicubic vs an eSR-MAX whose weights are all zero (output 16 everywhere).
    broken = create_model("eSR-MAX_s2_K3_C1")
    with torch.no_grad():
        broken.filter.weight.zero_()
    save_weights(broken, tmp_path / "eSR-MAX_s2_K3_C1.safetensors")
    weights = tmp_path / "eSR-MAX_s2_K3_C1.safetensors"
    table = evaluate(["Bicubic_s2", ModelEntry("eSR-MAX_s2_K3_C1", weights)], [tiny_set]).table
    assert table["Bicubic_s2"]["psnr_Tiny"] > table["eSR-MAX_s2_K3_C1"]["psnr_Tiny"] + 10


def test_an_id_without_weights_is_scored_with_its_shipped_weights(tiny_set):
    from edgesr.weights import shipped_weights_path

    shipped = shipped_weights_path("eSR-MAX_s2_K3_C2")
    table = evaluate(["eSR-MAX_s2_K3_C2", ModelEntry("eSR-TM_s2_K7_C16", None)], [tiny_set]).table
    same = evaluate([ModelEntry("eSR-MAX_s2_K3_C2", shipped)], [tiny_set]).table
    assert table["eSR-MAX_s2_K3_C2"]["psnr_Tiny"] == same["eSR-MAX_s2_K3_C2"]["psnr_Tiny"]
    assert table["eSR-TM_s2_K7_C16"]["psnr_Tiny"] > 40  # its training initialisation scores 33.8
    with pytest.raises(EdgesrError, match="no shipped weights for eSR-TM_s2_K3_C1; shipped: .*pass a weight file"):
        evaluate(["eSR-TM_s2_K3_C1"], [tiny_set])


def test_weights_folder_lists_ids_and_prefers_safetensors(tmp_path):
    model = create_model("eSR-TM_s2_K3_C2")
    torch.save(model.state_dict(), tmp_path / "eSR-TM_s2_K3_C2.model")
    save_weights(model, tmp_path / "eSR-TM_s2_K3_C2.safetensors")
    torch.save(create_model("Bicubic_s3").state_dict(), tmp_path / "Bicubic_s3.model")
    (tmp_path / "notes.model").write_text("not an id")
    entries = resolve_models([], tmp_path)
    assert {e.id: e.weights.name for e in entries} == {"eSR-TM_s2_K3_C2": "eSR-TM_s2_K3_C2.safetensors",
                                                      "Bicubic_s3": "Bicubic_s3.model"}
    assert [e.id for e in resolve_models([], tmp_path, scale=3)] == ["Bicubic_s3"]


def test_missing_weights_for_a_named_id_is_one_clear_error(tmp_path):
    with pytest.raises(EdgesrError, match="no weight file for eSR-MAX_s2_K3_C1"):
        resolve_models(["eSR-MAX_s2_K3_C1"], tmp_path)


def test_tables_round_trip_through_json_and_csv(tmp_path):
    table = {"a_s2": {"psnr_Set5": 30.5, "ssim_Set5": 0.9, "parameters": 10}}
    for name in ("t.json", "t.csv"):
        write_table(table, tmp_path / name)
        assert read_table(tmp_path / name) == table
    assert json.loads((tmp_path / "t.json").read_text()) == table


def test_compare_gives_differences_and_mean_absolute_difference():
    ours = {"m1": {"psnr_S": 30.0, "ssim_S": 0.9, "parameters": 5}, "m2": {"psnr_S": 31.0, "ssim_S": 0.8}}
    ref = {"m1": {"psnr_S": 30.5, "ssim_S": 0.8, "parameters": 5}, "m2": {"psnr_S": 30.0, "ssim_S": 0.8},
           "m3": {"psnr_S": 1.0}}
    deltas, means = compare_tables(ours, ref)
    assert deltas["m1"] == {"psnr_S": pytest.approx(-0.5), "ssim_S": pytest.approx(0.1)}
    assert means == {"psnr_S": pytest.approx(0.75), "ssim_S": pytest.approx(0.05)}


def test_cli_eval_writes_json_compares_and_saves_images(tiny_set, tmp_path):
    output, images = tmp_path / "r.json", tmp_path / "out"
    reference = tmp_path / "ref.json"
    reference.write_text(json.dumps({"Bicubic_s2": {"psnr_Tiny": 0.0, "ssim_Tiny": 0.0}}))
    result = CliRunner().invoke(app, ["eval", "Bicubic_s2", "--datasets", str(tiny_set),
                                      "--output", str(output), "--compare", str(reference),
                                      "--save-images", str(images), "--per-image"])
    assert result.exit_code == 0, result.output
    table = json.loads(output.read_text())
    assert set(table["Bicubic_s2"]) == {"psnr_Tiny", "ssim_Tiny", "parameters"}
    assert f"{table['Bicubic_s2']['psnr_Tiny']:+.4f}" in result.output  # the difference to 0.0
    assert (tmp_path / "r.per_image.csv").read_text().count("\n") == 3
    from edgesr.imaging import read_image

    assert read_image(images / "Bicubic_s2" / "Tiny" / "a.png").shape == (36, 42, 3)
    assert read_image(images / "Bicubic_s2" / "Tiny" / "b.png").shape == (48, 36)


def test_cli_eval_bad_dataset_is_one_error_line(tmp_path):
    result = CliRunner().invoke(app, ["eval", "Bicubic_s2", "--datasets", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "nowhere" in result.output and "Traceback" not in result.output


# --- against ../shared: the official weights on our copies of Set5 and Set14 --------------------

#: Cheap ids covering every scale and five families (~10 s); EDGESR_FULL_REFERENCE=1 runs all 15.
_REFERENCE_SUBSET = ["Bicubic_s2", "Bicubic_s3", "Bicubic_s4", "ESPCN_s2_D0_S9", "ESPCN_s4_D16_S12",
                     "FSRCNN_s3_D32_S6_M1", "eSR-MAX_s2_K3_C1", "eSR-MAX_s4_K7_C8", "eSR-TM_s3_K5_C4"]


def test_official_weights_reproduce_expected_values_on_shared_sets(reference_dir, datasets_dir):
    expected = json.loads((reference_dir / "expected_on_shared_sets.json").read_text())
    ids = list(expected) if os.environ.get("EDGESR_FULL_REFERENCE") else _REFERENCE_SUBSET
    entries = resolve_models(ids, reference_dir / "weights")
    table = evaluate(entries, [datasets_dir / "Set5", datasets_dir / "Set14"]).table
    _, means = compare_tables(table, {i: expected[i] for i in ids})
    for dataset in ("Set5", "Set14"):
        assert means[f"psnr_{dataset}"] <= 0.01
        assert means[f"ssim_{dataset}"] <= 0.0003


def test_auto_backend_gives_the_reference_scores(tiny_set, tmp_path):
    from edgesr.engine import native

    if native.load() is None:
        pytest.skip(f"fused kernel unavailable: {native.unavailable_reason()}")
    torch.manual_seed(1)
    save_weights(create_model("eSR-TM_s2_K5_C4"), tmp_path / "eSR-TM_s2_K5_C4.safetensors")
    entries = resolve_models([], tmp_path)
    reference = evaluate(entries, [tiny_set], backend="torch").table["eSR-TM_s2_K5_C4"]
    fused = evaluate(entries, [tiny_set], backend="auto").table["eSR-TM_s2_K5_C4"]
    assert fused["psnr_Tiny"] == pytest.approx(reference["psnr_Tiny"], abs=1e-4)
    assert fused["ssim_Tiny"] == pytest.approx(reference["ssim_Tiny"], abs=1e-6)
