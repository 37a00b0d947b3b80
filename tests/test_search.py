"""`edgesr search`: grid selection, the SQLite store, resume after kill -9, failures, executors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgesr import EdgesrError, create_model
from edgesr.cli import app
from edgesr.results import read_table
from edgesr.search import ResultsStore, SearchSettings, export_store, run_search, select_ids, with_bicubic
from edgesr.search.grid import read_ids_file
from edgesr.search.runner import store_lock
from edgesr.weights import save_weights

TRAINED = ["eSR-MAX_s2_K3_C1", "eSR-TM_s2_K3_C2", "eSR-TR_s2_K3_C1"]


def make_images(folder: Path, count: int, size: int, seed: int) -> Path:
    """Colour images of discs and bars: edges a one-layer upscaler can learn in a few steps."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        image = np.full((size, size), 30.0)
        for _ in range(5):
            cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(4, size / 3)
            image += rng.uniform(40, 100) * (((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) | (np.abs(yy - cy) < 2))
        gray = np.clip(image, 0, 255).astype(np.uint8)
        Image.fromarray(np.stack([gray, 255 - gray, gray // 2 + 50], -1)).save(folder / f"im{i}.png")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("search_data")
    return {"train": make_images(root / "train", 3, 64, 0), "eval": make_images(root / "Tiny", 2, 40, 1)}


def quick_settings(data: dict[str, Path], **changes: object) -> SearchSettings:
    values = {"datasets": [str(data["eval"])], "train_data": [str(data["train"])], "steps": 300,
              "bench_size": (32, 32), "bench_repeats": 2, "threads": 1, "train_threads": 1}
    return SearchSettings(**{**values, **changes})


@pytest.fixture(scope="module")
def searched(data, tmp_path_factory) -> tuple[Path, object]:
    """One real search (3 trained ids + bicubic) shared by the tests that read its store."""
    store = tmp_path_factory.mktemp("search") / "results.sqlite"
    report = run_search(with_bicubic(TRAINED), store, quick_settings(data))
    return store, report


@pytest.fixture
def weights_folder(tmp_path) -> Path:
    """Initial-state weights for two ids, as a folder of <id>.safetensors."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for model_id in ("eSR-MAX_s2_K3_C2", "eSR-TM_s2_K5_C1"):
        save_weights(create_model(model_id), folder / f"{model_id}.safetensors")
    return folder


# --- selection ---------------------------------------------------------------------------------

def test_filters_with_every_field_build_the_product_beyond_the_paper():
    assert select_ids(families=["esr-tm"], scales=[2], fields={"K": [3], "C": [1, 32]}) == [
        "eSR-TM_s2_K3_C1", "eSR-TM_s2_K3_C32"]


def test_filters_missing_a_field_narrow_the_paper_grid():
    ids = select_ids(families=["eSR-TR"], scales=[3], fields={"C": [4]})
    assert ids == ["eSR-TR_s3_K3_C4", "eSR-TR_s3_K5_C4", "eSR-TR_s3_K7_C4"]


def test_the_issue_grid_has_45_ids():
    ids = select_ids(families=["eSR-MAX", "eSR-TM", "eSR-TR"], scales=[2], fields={"K": [3, 5, 7], "C": [1, 2, 4, 8, 16]})
    assert len(ids) == 45 and len(set(ids)) == 45


def test_paper_grid_narrowed_by_filters():
    assert len(select_ids(grid="paper")) == 1185
    assert select_ids(grid="paper", families=["eSR-MAX"], scales=[4], fields={"K": [7], "C": [16]}) == [
        "eSR-MAX_s4_K7_C16"]


def test_ids_file_skips_comments_and_names_the_bad_line(tmp_path):
    good = tmp_path / "ids.txt"
    good.write_text("# my grid\neSR-TM_s2_K3_C1\n\n eSR-MAX_s3_K5_C2  # fast\n")
    assert read_ids_file(good) == ["eSR-TM_s2_K3_C1", "eSR-MAX_s3_K5_C2"]
    bad = tmp_path / "bad.txt"
    bad.write_text("eSR-TM_s2_K3_C1\neSR-TM_s2_K4\n")
    with pytest.raises(EdgesrError, match=r"bad.txt:2"):
        read_ids_file(bad)


def test_bicubic_reference_rows_are_added_once_per_scale():
    assert with_bicubic(["eSR-TM_s2_K3_C1", "eSR-MAX_s3_K3_C1", "eSR-TR_s2_K3_C1"]) == [
        "eSR-TM_s2_K3_C1", "eSR-MAX_s3_K3_C1", "eSR-TR_s2_K3_C1", "Bicubic_s2", "Bicubic_s3"]


# --- a real search -----------------------------------------------------------------------------

def test_search_writes_one_complete_row_per_id(searched):
    store, report = searched
    assert sorted(report.done) == sorted(with_bicubic(TRAINED)) and not report.failed
    with ResultsStore(store, readonly=True) as results:
        table = results.table()
        assert list(table) == with_bicubic(TRAINED)
        for model_id, row in table.items():
            assert 20 < row["psnr_Tiny"] < 60 and 0 < row["ssim_Tiny"] <= 1
            assert row["speed_cpu"] == pytest.approx(1e3 / row["ms_cpu"])
            assert row["parameters"] == sum(p.numel() for p in create_model(model_id).parameters())
        info = results.record("eSR-TM_s2_K3_C2")["info"]
        assert info["trained"] and info["steps"] == 300 and info["bench"]["size"] == [32, 32]
        assert results.record("Bicubic_s2")["info"]["weights"] == "built-in"


def test_trained_weights_beat_their_initialisation(searched, data):
    from edgesr.evaluate import evaluate

    store, _ = searched
    with ResultsStore(store, readonly=True) as results:
        trained = results.table()["eSR-TM_s2_K3_C2"]["psnr_Tiny"]
    initial = evaluate([create_model("eSR-TM_s2_K3_C2")], [str(data["eval"])]).table["eSR-TM_s2_K3_C2"]["psnr_Tiny"]
    assert trained > initial + 1.0


def test_rerun_skips_finished_ids_and_changes_no_row(searched, data):
    store, _ = searched
    with ResultsStore(store, readonly=True) as results:
        before = {i: results.record(i) for i in results.statuses()}
    report = run_search(with_bicubic(TRAINED), store, quick_settings(data))
    assert report.done == [] and report.skipped_done == 4
    with ResultsStore(store, readonly=True) as results:
        assert {i: results.record(i) for i in results.statuses()} == before


def test_checkpoints_are_dropped_and_weights_kept_after_a_row_is_written(searched):
    store, _ = searched
    work = store.with_name("results.work")
    assert not list(work.glob("*.ckpt.pt"))
    assert sorted(p.name for p in work.glob("*.safetensors") if ".best." not in p.name) == sorted(
        f"{i}.safetensors" for i in TRAINED)


def test_export_writes_the_paper_format(searched, tmp_path):
    store, _ = searched
    with ResultsStore(store, readonly=True) as results:
        table = results.table()
    path, rows = export_store(store, tmp_path / "table.json")
    assert rows == 4 and json.loads(path.read_text()) == table
    csv_table = read_table(export_store(store, tmp_path / "table.csv")[0])
    assert csv_table.keys() == table.keys()
    assert csv_table["eSR-TM_s2_K3_C2"]["psnr_Tiny"] == pytest.approx(table["eSR-TM_s2_K3_C2"]["psnr_Tiny"])


def test_store_refuses_a_run_with_other_settings(searched, data):
    store, _ = searched
    with pytest.raises(EdgesrError, match="other settings.*training"):
        run_search(TRAINED, store, quick_settings(data, steps=301))


def test_store_binds_only_the_recipes_its_ids_use(searched, data, monkeypatch):
    from edgesr import train

    store, _ = searched
    with ResultsStore(store, readonly=True) as results:
        assert set(results.settings()["training"]["recipes"]) == {"one_layer"}
    monkeypatch.setitem(train.RECIPES, "deep", {**train.RECIPES["deep"], "lr": 0.123})
    assert run_search(TRAINED, store, quick_settings(data)).skipped_done == len(TRAINED)  # unaffected
    monkeypatch.setitem(train.RECIPES, "one_layer", {**train.RECIPES["one_layer"], "lr": 0.123})
    with pytest.raises(EdgesrError, match="other settings.*training"):
        run_search(TRAINED, store, quick_settings(data))


def test_a_store_grows_by_new_kinds_of_model_only():
    from edgesr.search.settings import only_new_kinds, with_known_recipes

    known = {"datasets": ["a"], "training": {"seed": 0, "recipes": {"one_layer": {"lr": 1}}}}
    deep_run = {"datasets": ["a"], "training": {"seed": 0, "recipes": {"deep": {"lr": 2}}}}
    grown = with_known_recipes(deep_run, known)
    assert grown["training"]["recipes"] == {"one_layer": {"lr": 1}, "deep": {"lr": 2}}
    assert only_new_kinds(grown, known)
    retuned = {"datasets": ["a"], "training": {"seed": 0, "recipes": {"one_layer": {"lr": 3}}}}
    assert not only_new_kinds(with_known_recipes(retuned, known), known)
    other_seed = {"datasets": ["a"], "training": {"seed": 1, "recipes": {"deep": {"lr": 2}}}}
    assert not only_new_kinds(with_known_recipes(other_seed, known), known)
    # a store holding an id of the "new" kind trained it under a recipe it never recorded
    assert only_new_kinds(grown, known, held=["eSR-TM_s2_K3_C1", "Bicubic_s2"])
    assert not only_new_kinds(grown, known, held=["eSR-TM_s2_K3_C1", "FSRCNN_s2_D56_S12_M4"])


def test_a_second_search_on_the_same_store_is_refused(tmp_path, data, weights_folder):
    store = tmp_path / "s.sqlite"
    with store_lock(tmp_path / "s.work"), pytest.raises(EdgesrError, match="another search"):
        run_search(["eSR-MAX_s2_K3_C2"], store, quick_settings(data, weights=str(weights_folder)))


def test_a_file_that_is_not_a_store_is_refused(tmp_path, data):
    other = tmp_path / "notes.sqlite"
    other.write_text("hello")
    with pytest.raises(EdgesrError, match="not a results store"):
        run_search(["Bicubic_s2"], other, quick_settings(data))


# --- failures ----------------------------------------------------------------------------------

def test_failed_id_is_recorded_skipped_and_retried_on_request(tmp_path, data, weights_folder):
    store = tmp_path / "f.sqlite"
    settings = quick_settings(data, weights=str(weights_folder))
    ids = ["eSR-MAX_s2_K3_C2", "eSR-TR_s2_K3_C3"]
    report = run_search(ids, store, settings)
    assert report.done == ["eSR-MAX_s2_K3_C2"]
    assert "no weight file for eSR-TR_s2_K3_C3" in report.failed["eSR-TR_s2_K3_C3"]
    with ResultsStore(store, readonly=True) as results:
        assert list(results.table()) == ["eSR-MAX_s2_K3_C2"]
        assert "no weight file" in results.failures()["eSR-TR_s2_K3_C3"]

    assert run_search(ids, store, settings).skipped_failed == 1  # not retried unasked
    save_weights(create_model("eSR-TR_s2_K3_C3"), weights_folder / "eSR-TR_s2_K3_C3.safetensors")
    report = run_search(ids, store, settings, retry_failed=True)
    assert report.done == ["eSR-TR_s2_K3_C3"] and not report.failed
    with ResultsStore(store, readonly=True) as results:
        assert results.failures() == {} and list(results.table()) == ids
        assert results.record("eSR-TR_s2_K3_C3")["attempts"] == 2


def test_weights_that_do_not_fit_fail_with_the_file_named(tmp_path, data, weights_folder):
    save_weights(create_model("eSR-TM_s2_K3_C1"), tmp_path / "wrong.safetensors")
    (tmp_path / "wrong.safetensors").rename(weights_folder / "eSR-TM_s2_K3_C4.safetensors")
    report = run_search(["eSR-TM_s2_K3_C4"], tmp_path / "w.sqlite", quick_settings(data, weights=str(weights_folder)))
    assert "eSR-TM_s2_K3_C4.safetensors" in report.failed["eSR-TM_s2_K3_C4"]


def test_rebench_measures_speed_again_and_keeps_quality(tmp_path, data, weights_folder):
    store = tmp_path / "r.sqlite"
    settings = quick_settings(data, weights=str(weights_folder))
    run_search(["eSR-MAX_s2_K3_C2"], store, settings)
    with ResultsStore(store, readonly=True) as results:
        before = results.record("eSR-MAX_s2_K3_C2")
    report = run_search(["eSR-MAX_s2_K3_C2"], store, settings, rebench=True)
    assert report.done == ["eSR-MAX_s2_K3_C2"] and report.skipped_done == 0
    with ResultsStore(store, readonly=True) as results:
        after = results.record("eSR-MAX_s2_K3_C2")
    assert after["status"] == "done" and after["row"]["speed_cpu"] > 0
    assert after["row"]["psnr_Tiny"] == before["row"]["psnr_Tiny"]
    assert after["info"]["bench"]["seconds"] > 0 and after["updated"] >= before["updated"]
    assert set(after["row"]) == set(before["row"])


def test_an_id_evaluated_before_a_stop_is_only_benched_on_resume(tmp_path, data, weights_folder):
    store = tmp_path / "e.sqlite"
    settings = quick_settings(data, weights=str(weights_folder))
    with ResultsStore(store) as results:  # as a parallel run leaves it when stopped before its bench phase
        results.bind_settings(settings.identity())
        results.put_evaluated("eSR-MAX_s2_K3_C2", {"psnr_Tiny": 12.5, "parameters": 18}, {"pid": 1})
        assert results.table() == {}  # not exported until complete
    report = run_search(["eSR-MAX_s2_K3_C2"], store, settings)
    assert report.done == ["eSR-MAX_s2_K3_C2"]
    with ResultsStore(store, readonly=True) as results:
        row = results.table()["eSR-MAX_s2_K3_C2"]
        assert row["psnr_Tiny"] == 12.5 and row["speed_cpu"] > 0  # kept, not evaluated again
        assert results.record("eSR-MAX_s2_K3_C2")["info"]["pid"] == 1


# --- kill -9 and resume ------------------------------------------------------------------------

def _done_ids(store: Path) -> list[str]:
    if not store.exists():
        return []
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            return [r[0] for r in db.execute("SELECT id FROM results WHERE status = 'done'")]
    except sqlite3.OperationalError:  # schema not created yet
        return []


def test_killed_search_resumes_without_lost_or_duplicated_rows(tmp_path, data):
    store, work = tmp_path / "k.sqlite", tmp_path / "k.work"
    command = [sys.executable, "-m", "edgesr.cli", "search", *TRAINED, "--store", str(store),
               "--datasets", str(data["eval"]), "--train-data", str(data["train"]), "--steps", "400",
               "--bench-size", "32x32", "--bench-repeats", "2", "--threads", "1", "--train-threads", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    victim = None
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        done = _done_ids(store)
        training = [p.name[:-len(".ckpt.pt")] for p in work.glob("*.ckpt.pt")]
        victim = next((i for i in training if i not in done), None)
        if done and victim:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, f"search ended before the kill: {process.stderr.read()!r}"
    before = _done_ids(store)
    assert 1 <= len(before) < 4 and victim not in before
    with ResultsStore(store, readonly=True) as results:
        kept = {i: results.record(i) for i in before}

    subprocess.run(command, check=True, capture_output=True, timeout=120)
    with ResultsStore(store, readonly=True) as results:
        assert sorted(results.table()) == sorted(with_bicubic(TRAINED))
        assert {i: results.record(i) for i in before} == kept  # finished rows were not redone
        info = results.record(victim)["info"]
        assert info.get("reused") or info.get("resumed_from_step", 0) > 0  # training was not restarted
    with sqlite3.connect(store) as db:
        ids = [r[0] for r in db.execute("SELECT id FROM results")]
    assert sorted(ids) == sorted(set(ids)) == sorted(with_bicubic(TRAINED))


# --- executors and CLI -------------------------------------------------------------------------

def test_process_pool_prepares_ids_in_worker_processes(tmp_path, data, weights_folder):
    ids = ["eSR-MAX_s2_K3_C2", "eSR-TM_s2_K5_C1"]
    report = run_search(ids, tmp_path / "p.sqlite", quick_settings(data, weights=str(weights_folder)), workers=2)
    assert sorted(report.done) == sorted(ids)
    with ResultsStore(tmp_path / "p.sqlite", readonly=True) as results:
        pids = {results.record(i)["info"]["pid"] for i in ids}
        assert os.getpid() not in pids and set(results.statuses().values()) == {"done"}


def test_ray_executor_runs_each_id_as_a_task(tmp_path, data, weights_folder):
    pytest.importorskip("ray")
    ids = ["eSR-MAX_s2_K3_C2", "eSR-TM_s2_K5_C1"]
    report = run_search(ids, tmp_path / "r.sqlite", quick_settings(data, weights=str(weights_folder)),
                        executor="ray", workers=2)
    assert sorted(report.done) == sorted(ids) and not report.failed
    with ResultsStore(tmp_path / "r.sqlite", readonly=True) as results:
        assert os.getpid() not in {results.record(i)["info"]["pid"] for i in ids}


def test_cli_search_with_weights_then_export(tmp_path, data, weights_folder):
    store = tmp_path / "cli.sqlite"
    arguments = ["search", "--family", "eSR-MAX", "--scale", "2", "--K", "3", "--C", "2", "--store", str(store),
                 "--weights", str(weights_folder), "--datasets", str(data["eval"]), "--bench-size", "32x32",
                 "--bench-repeats", "2", "--threads", "1"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "2 done, 0 failed" in result.output
    result = CliRunner().invoke(app, ["search", "--store", str(store), "--export", str(tmp_path / "t.csv")])
    assert result.exit_code == 0, result.output
    assert list(read_table(tmp_path / "t.csv")) == ["eSR-MAX_s2_K3_C2", "Bicubic_s2"]


def test_cli_search_without_a_selection_is_one_clear_error():
    result = CliRunner().invoke(app, ["search"])
    assert result.exit_code == 1 and "no models selected" in result.output


def test_ctrl_c_during_an_id_stops_the_search_instead_of_recording_a_failure(tmp_path, data, monkeypatch):
    from edgesr.search import task

    def interrupted_training(*args, **kwargs):
        task._interrupted.set()  # what the SIGINT handler does before training turns it into an error
        raise EdgesrError("interrupted at step 3; the last checkpoint resumes with --resume")

    monkeypatch.setattr(task, "obtain_weights", interrupted_training)
    store = tmp_path / "c.sqlite"
    with pytest.raises(KeyboardInterrupt):
        run_search(["eSR-MAX_s2_K3_C1"], store, quick_settings(data))
    task._interrupted.clear()
    with ResultsStore(store, readonly=True) as results:
        assert results.statuses() == {}
