"""edgesr.results: the one reader and writer of the paper-format table."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edgesr.errors import EdgesrError
from edgesr.results import per_image_path, read_table, table_columns, write_per_image, write_table


def test_bench_rows_with_names_round_trip_through_json_and_csv(tmp_path):
    rows = {"eSR-MAX_s2_K3_C1": {"speed_cpu": 10.0, "ms_cpu": 100.0},
            "Bicubic_s2": {"speed_cpu": 20.0, "ms_cpu": 50.0, "backend": "fused"}}
    assert json.loads(write_table(rows, tmp_path / "r.json").read_text()) == rows
    with write_table(rows, tmp_path / "r.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["id"] for r in table] == ["eSR-MAX_s2_K3_C1", "Bicubic_s2"]
    assert float(table[1]["ms_cpu"]) == 50.0 and table[0]["backend"] == ""
    assert read_table(tmp_path / "r.csv") == rows


def test_columns_keep_the_order_they_first_appear_in():
    assert table_columns({"a": {"psnr_Set5": 1.0, "ssim_Set5": 0.9}, "b": {"parameters": 3, "psnr_Set5": 2.0}}) \
        == ["psnr_Set5", "ssim_Set5", "parameters"]


def test_tables_go_to_json_or_csv_only(tmp_path):
    with pytest.raises(EdgesrError, match="json or .csv"):
        write_table({}, tmp_path / "r.txt")
    assert not (tmp_path / "r.txt").exists()


def test_per_image_rows_keep_full_precision_beside_the_table(tmp_path):
    rows = [{"id": "Bicubic_s2", "dataset": "Set5", "image": "baby", "psnr": np.float64(33.123456789012),
             "ssim": 0.9123456789}]
    path = write_per_image(rows, per_image_path(tmp_path / "eval.json"))
    assert path.name == "eval.per_image.csv"
    assert path.read_text() == "id,dataset,image,psnr,ssim\nBicubic_s2,Set5,baby,33.123456789012,0.9123456789\n"
