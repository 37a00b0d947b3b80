"""`edgesr bench`: MAC counts, result files in the shared format, the CLI on a tiny size."""

from __future__ import annotations

import csv
import json
import time

import pytest
import torch
from typer.testing import CliRunner

from edgesr.bench import Timing, bench, expand_models, macs, time_interleaved
from edgesr.cli import app
from edgesr.errors import EdgesrError


def test_macs_of_one_layer_models_count_every_filter_tap():
    # eSR-TM: 2 * s*s * C filters of K x K per LR pixel, LR = output / s.
    assert macs("eSR-TM_s2_K7_C16", 1080, 1920) == 2 * 4 * 16 * 49 * 540 * 960
    assert macs("eSR-MAX_s3_K3_C1", 1080, 1920) == 9 * 9 * 360 * 640
    assert macs("eSR-TR_s4_K5_C2", 8, 8) == 3 * 16 * 2 * 25 * 4


def test_macs_of_bicubic_counts_its_polyphase_convolution():
    assert macs("Bicubic_s2", 2, 2) == 4 * 6 * 6


def test_macs_of_deep_models_grow_with_their_widths():
    assert macs("eSR-CNN_s2_C4_D3_S6", 2, 2) == 25 * 3 + 9 * 3 * 6 + 9 * 6 * 2 * 4 * 4
    assert macs("FSRCNN_s2_D56_S12_M4", 4, 4) > macs("FSRCNN_s2_D6_S1_M1", 4, 4)
    assert macs("ESPCN_s3_D0_S3", 3, 3) == 9 * 3 + 9 * 3 * 9


def test_timing_reports_median_and_interquartile_spread():
    t = Timing([0.001, 0.002, 0.003, 0.004, 0.100])
    assert t.median_ms == pytest.approx(3.0)
    assert t.spread_ms == pytest.approx(2.0)


def test_time_interleaved_runs_every_call_each_round_and_varies_who_runs_before_whom():
    order = []
    time_interleaved({name: (lambda n=name: order.append(n)) for name in "abcd"}, repeats=12, warmup=0)
    rounds = [order[i:i + 4] for i in range(0, len(order), 4)]
    assert all(sorted(r) == list("abcd") for r in rounds)
    before_a = {order[i - 1] for i in range(1, len(order)) if order[i] == "a"}
    assert len(before_a) >= 2  # a fixed or rotated order would always put the same call before "a"


def test_time_interleaved_bursts_average_back_to_back_calls():
    calls, syncs = [], []
    timings = time_interleaved({"a": lambda: calls.append(time.sleep(0.002))}, repeats=2, warmup=0,
                               sync=lambda: syncs.append(1), burst=5)
    assert len(calls) == 10 and len(syncs) == 2  # one sync per burst, not per call
    assert len(timings["a"].seconds) == 2 and 0.002 <= timings["a"].median_ms / 1e3 < 0.008  # not 5 x 2 ms


def test_time_interleaved_warm_times_each_sample_right_after_an_untimed_call_of_the_same_callable():
    order, stamps = [], {"a": [], "b": []}

    def call(name: str) -> None:
        order.append(name)
        stamps[name].append(time.perf_counter())
        if len(stamps[name]) % 2:  # the untimed call sleeps, the timed one right after it does not
            time.sleep(0.01)

    timings = time_interleaved({n: (lambda n=n: call(n)) for n in "ab"}, repeats=6, warmup=0, warm=True)
    assert len(order) == 24 and all(order[i] == order[i + 1] for i in range(0, 24, 2))
    assert all(t.median_ms < 5 for t in timings.values())  # the sleeping call was not timed


def test_expand_models_resolves_bicubic_and_filters_by_scale():
    assert expand_models(["Bicubic", "eSR-MAX_s3_K3_C1"], 3) == ["Bicubic_s3", "eSR-MAX_s3_K3_C1"]
    with pytest.raises(EdgesrError, match="scale 4"):
        expand_models(["eSR-MAX_s2_K3_C1"], 4)


def test_bench_rows_use_the_shared_results_columns():
    rows, info = bench(["eSR-MAX_s2_K3_C2", "Bicubic_s3"], repeats=2, size=(12, 18), threads=1)
    assert list(rows) == ["eSR-MAX_s2_K3_C2", "Bicubic_s3"]
    for row in rows.values():
        assert row["speed_cpu"] == pytest.approx(1e3 / row["ms_cpu"])
        assert row["ms_torch_reference_cpu"] > 0 and row["ms_pillow_cpu"] > 0
        assert 0 < row["peak_fraction_cpu"]
    assert info["gemm_peak_gflops"] > 0 and "torch" in info["libraries"]


def test_bench_works_with_the_torch_backend_and_bfloat16():
    rows, _ = bench(["eSR-TM_s2_K3_C1"], backend="torch", dtype="bfloat16", repeats=1, size=(8, 8),
                    threads=1, baselines=False)
    assert rows["eSR-TM_s2_K3_C1"]["backend"] == "torch"
    assert "ratio_vs_opencv" not in rows["eSR-TM_s2_K3_C1"]


def test_bench_command_writes_json(tmp_path):
    out = tmp_path / "speed.json"
    result = CliRunner().invoke(app, ["bench", "eSR-MAX_s2_K3_C1", "--size", "8x10", "-r", "1",
                                      "--threads", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())["eSR-MAX_s2_K3_C1"]
    assert {"speed_cpu", "ms_cpu", "macs", "gflops_cpu"} <= set(row)


def test_bench_command_rejects_a_bad_size():
    result = CliRunner().invoke(app, ["bench", "Bicubic_s2", "--size", "big"])
    assert result.exit_code == 1 and "--size" in result.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_on_cuda_reports_cuda_columns():
    rows, info = bench(["eSR-MAX_s2_K3_C2"], device="cuda", repeats=2, size=(16, 16))
    assert "speed_cuda" in rows["eSR-MAX_s2_K3_C2"] and info["dtype"] == "float16"


def test_pipeline_bench_times_the_users_call_next_to_the_kernel():
    rows, info = bench(["eSR-MAX_s2_K3_C1"], repeats=1, size=(32, 48), pipeline="rgb")
    row = rows["eSR-MAX_s2_K3_C1"]
    assert info["pipeline"] == row["pipeline"] == "rgb"
    assert row["ms_cpu"] > 0 and row["ms_kernel_cpu"] > 0 and "ratio_vs_pillow" in row


def test_unknown_pipeline_is_a_clear_error():
    with pytest.raises(EdgesrError, match="unknown pipeline"):
        bench(["Bicubic_s2"], repeats=1, size=(8, 8), pipeline="rgba")


def test_video_bench_reports_frames_per_second_of_the_job_and_its_stages():
    pytest.importorskip("av")
    from edgesr.bench import bench_video

    row = bench_video("Bicubic_s2", size=(32, 48), frames=6, repeats=1, threads=1)
    assert row["frames"] == 6 and row["output"] == "96x64"
    assert min(row["fps_full"], row["fps_kernel"], row["fps_decode_encode"]) > 0
    assert row["ratio_vs_slowest_stage"] == pytest.approx(
        row["fps_full"] / min(row["fps_kernel"], row["fps_decode_encode"]))


def test_bench_takes_a_built_module_as_every_entry_point_does():
    from edgesr.models import create_model

    rows, _ = bench([create_model("eSR-TM_s2_K3_C1")], repeats=1, size=(8, 8), threads=1, baselines=False,
                    pipeline="rgb")
    assert list(rows) == ["eSR-TM_s2_K3_C1"] and rows["eSR-TM_s2_K3_C1"]["pipeline"] == "rgb"
