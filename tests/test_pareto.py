"""Pareto fronts on hand-made points, tables from stores and paper-format files, PNG and HTML plots."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image
from typer.testing import CliRunner

from edgesr import EdgesrError
from edgesr.cli import app
from edgesr.search import ResultsStore
from edgesr.search.page import write_html
from edgesr.search.pareto import Source, analyse, direction, load_sources, pareto_front
from edgesr.search.plots import staircase


def row(speed: float, psnr: float, **extra: float) -> dict:
    return {"speed_cpu": speed, "psnr_Set5": psnr, "parameters": 10, **extra}


#: Hand-made x2 results: three points on the front, two dominated, bicubic on the front.
TABLE = {
    "Bicubic_s2": row(300.0, 33.0),
    "eSR-MAX_s2_K3_C1": row(500.0, 32.0),     # fastest: front
    "eSR-TM_s2_K3_C2": row(200.0, 33.5),      # front
    "eSR-TM_s2_K5_C2": row(150.0, 33.2),      # dominated by K3_C2
    "eSR-TR_s2_K7_C16": row(20.0, 36.0),      # best quality: front
    "eSR-TR_s2_K5_C16": row(20.0, 35.0),      # same speed, worse: dominated
    "eSR-TM_s3_K3_C1": row(900.0, 30.0),      # another scale
}


def test_front_keeps_exactly_the_non_dominated_points():
    points = [(i, r["speed_cpu"], r["psnr_Set5"]) for i, r in TABLE.items() if "_s2" in i]
    assert pareto_front(points) == ["eSR-MAX_s2_K3_C1", "Bicubic_s2", "eSR-TM_s2_K3_C2", "eSR-TR_s2_K7_C16"]


def test_equal_points_keep_the_first_listed():
    assert pareto_front([("a", 1.0, 2.0), ("b", 1.0, 2.0), ("c", 0.5, 1.0)]) == ["a"]


def test_front_when_smaller_x_is_better():
    points = [("fast", 1.0, 30.0), ("slow", 5.0, 34.0), ("bad", 6.0, 33.0)]
    assert pareto_front(points, x_better="min") == ["fast", "slow"]


def test_columns_know_which_way_is_better():
    assert direction("speed_MaxQ") == direction("psnr_Set14") == direction("ssim_Set5") == "max"
    assert direction("ms_cpu") == direction("parameters") == direction("lpips_Set5") == "min"


def test_analysis_has_a_panel_per_scale_with_bicubic_as_reference():
    analysis = analyse([Source("mine", TABLE)])
    x2, x3 = analysis.panels
    assert (x2.scale, x3.scale) == (2, 3)
    assert x2.bicubic.id == "Bicubic_s2" and len(x2.points) == 6
    assert x3.bicubic is None and any("no Bicubic_s3" in n for n in analysis.notes)


def test_staircase_turns_only_at_attainable_corners():
    panel = analyse([Source("mine", TABLE)]).panels[0]
    xs, ys = staircase(panel)
    front = {(p.x, p.y) for p in panel.front_points()}
    assert {(x, y) for x, y in zip(xs, ys)} >= front
    for x, y in zip(xs, ys):  # every corner is matched or beaten by a real point
        assert any(p.x >= x and p.y >= y for p in panel.points)


def test_rows_without_values_are_left_out_and_counted():
    table = {**TABLE, "eSR-MAX_s2_K5_C1": {"psnr_Set5": 31.0}, "eSR-MAX_s2_K7_C1": row(0.0, 31.0),
             "not-a-model": row(1.0, 1.0)}
    analysis = analyse([Source("mine", table)])
    assert analysis.panels[0].skipped == 2 and len(analysis.panels[0].points) == 6
    assert any("not model ids" in n for n in analysis.notes)


def test_each_source_uses_the_first_x_column_it_has(tmp_path):
    store = tmp_path / "ours.sqlite"
    with ResultsStore(store) as results:
        for model_id, values in TABLE.items():
            results.put_done(model_id, values, {})
        results.put_failed("eSR-TR_s2_K3_C1", "boom")
    paper = tmp_path / "paper.json"
    paper.write_text(json.dumps({"Bicubic_s2": {"speed_MaxQ": 600.0, "psnr_Set5": 33.7},
                                 "eSR-TM_s2_K7_C16": {"speed_MaxQ": 100.0, "psnr_Set5": 36.5}}))
    analysis = analyse(load_sources([store, paper]), x=["speed_cpu", "speed_MaxQ"])
    panels = {(p.source, p.scale): p for p in analysis.panels}
    assert panels[("ours", 2)].x == "speed_cpu" and panels[("paper", 2)].x == "speed_MaxQ"
    assert panels[("paper", 2)].front == ["Bicubic_s2", "eSR-TM_s2_K7_C16"]
    assert "eSR-TR_s2_K3_C1" not in {p.id for p in panels[("ours", 2)].points}  # failures are not rows


def test_a_missing_column_is_one_error_listing_what_the_table_has():
    with pytest.raises(EdgesrError, match=r"mine: has no x column speed_AGX; it has psnr_Set5, speed_cpu"):
        analyse([Source("mine", TABLE)], x=["speed_AGX"])


def test_png_plots_are_written_per_scale(tmp_path):
    pytest.importorskip("matplotlib")
    from edgesr.search.plots import write_pngs

    other = {k: {**v, "speed_cpu": v["speed_cpu"] * 2} for k, v in TABLE.items()}
    paths = write_pngs(analyse([Source("a", TABLE), Source("b", other)]), tmp_path)
    assert [p.name for p in paths] == ["pareto_x2.png", "pareto_x3.png"]
    for path in paths:
        assert path.stat().st_size > 10_000
        with Image.open(path) as image:
            assert image.width > image.height  # two panels side by side


def test_html_page_embeds_every_point_with_all_its_metrics(tmp_path):
    analysis = analyse([Source("mine", TABLE)])
    path = write_html(analysis, tmp_path / "pareto.html")
    page = path.read_text()
    points = json.loads(re.search(r"const POINTS = (\[.*?\]);", page, re.DOTALL).group(1))
    assert len(points) == len(TABLE)
    by_id = {p["id"]: p for p in points}
    assert by_id["eSR-TR_s2_K7_C16"]["front"] and not by_id["eSR-TM_s2_K5_C2"]["front"]
    assert by_id["eSR-TM_s2_K3_C2"]["row"] == TABLE["eSR-TM_s2_K3_C2"]
    assert page.count('class="pt ') == len(TABLE) and page.count("<svg class=\"panel\"") == 2
    assert "<script>" in page and "http" not in page.split("<script>")[1]  # self-contained


def test_cli_pareto_prints_the_front_and_writes_plots(tmp_path):
    table = tmp_path / "mine.json"
    table.write_text(json.dumps(TABLE))
    result = CliRunner().invoke(app, ["pareto", str(table), "--scale", "2", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "4 of 6 on the front" in result.output and "eSR-TR_s2_K7_C16" in result.output
    assert "eSR-TM_s2_K5_C2" not in result.output
    fronts = json.loads((tmp_path / "out" / "fronts.json").read_text())
    assert [p["id"] for p in fronts["mine"]["x2"]][-1] == "eSR-TR_s2_K7_C16"
    assert (tmp_path / "out" / "pareto.html").stat().st_size > 5_000


def test_paper_table_fronts_per_scale(reference_dir, tmp_path):
    paper = reference_dir / "paper_results_set5_set14.json"
    analysis = analyse(load_sources([paper]), x=["speed_MaxQ"])
    assert [p.scale for p in analysis.panels] == [2, 3, 4]
    for panel in analysis.panels:
        assert len(panel.points) == 395 and panel.bicubic is not None
        assert 3 <= len(panel.front) < 100
        best = max(panel.points, key=lambda p: p.y)
        assert panel.front[-1] == best.id  # the best quality is always on the front
