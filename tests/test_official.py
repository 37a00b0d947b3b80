"""`edgesr weights fetch official` and ``--official``: downloads from a loopback server serving the
official repository's layout (``<base>/model-files/<id>.model``) built from ../shared/reference."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from edgesr.cli import app
from edgesr.errors import EdgesrError
from edgesr.models import paper_grid
from edgesr.official import (LICENSE_NOTE, fetch_official, official_dir, official_manifest, official_path,
                             official_weights)

runner = CliRunner()
SMALL = "eSR-MAX_s2_K3_C2"
DEEP = "ESPCN_s2_D16_S32"


class Mirror:
    """A threaded HTTP server on 127.0.0.1 serving ``/model-files/<name>`` from memory, with
    ``Range: bytes=N-`` support. ``cut[name] = k`` sends the next answer's headers for the whole
    body but only ``k`` bytes of it, then drops the connection (an interrupted transfer)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                name = self.path.rsplit("/", 1)[-1]
                mirror.requests.append((name, self.headers.get("Range")))
                if not self.path.startswith("/model-files/") or name not in mirror.files:
                    self.send_error(404)
                    return
                data = mirror.files[name]
                start = 0
                ranged = self.headers.get("Range")
                if ranged and ranged.startswith("bytes="):
                    start = int(ranged[6:].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                limit = mirror.cut.pop(name, None)
                self.wfile.write(body if limit is None else body[:limit])
                if limit is not None:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty edgesr cache for the test."""
    monkeypatch.setenv("EDGESR_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("EDGESR_OFFICIAL_URL", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def mirror(reference_dir):
    """The official layout for three ids, served from the reference copies."""
    names = [f"{i}.model" for i in (SMALL, DEEP, "Bicubic_s2")]
    server = Mirror({n: (reference_dir / "weights" / n).read_bytes() for n in names})
    yield server
    server.close()


def leftovers(folder: Path) -> list[str]:
    """Files in the cache folder that are not finished ``.model`` files."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".model")) if folder.is_dir() else []


def test_manifest_lists_every_paper_id_with_size_and_sha256():
    manifest = official_manifest()
    assert set(manifest) == set(paper_grid())
    entry = manifest[DEEP]
    assert entry.size > 0 and len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0


def test_manifest_matches_the_reference_files(reference_dir):
    from edgesr.data.download import file_digest

    for model_id in (SMALL, DEEP, "FSRCNN_s4_D44_S12_M4"):
        path = reference_dir / "weights" / f"{model_id}.model"
        assert official_manifest()[model_id].size == path.stat().st_size
        assert official_manifest()[model_id].sha256 == file_digest(path)


def test_fetch_downloads_verified_files_into_the_cache(cache, mirror, reference_dir):
    report = fetch_official([SMALL, DEEP], base=mirror.url, retries=0)
    assert report.fetched == [SMALL, DEEP] and not report.failed
    assert official_dir() == cache / "official"
    for model_id in (SMALL, DEEP):
        assert official_path(model_id).read_bytes() == (reference_dir / "weights" / f"{model_id}.model").read_bytes()
    assert leftovers(official_dir()) == []


def test_second_fetch_keeps_intact_files_without_downloading(cache, mirror):
    fetch_official([SMALL], base=mirror.url, retries=0)
    mirror.requests.clear()
    report = fetch_official([SMALL], base=mirror.url, retries=0)
    assert report.cached == [SMALL] and report.fetched == [] and mirror.requests == []


def test_interrupted_download_resumes_with_a_range_request(cache, mirror, reference_dir):
    data = (reference_dir / "weights" / f"{DEEP}.model").read_bytes()
    half = len(data) // 2
    mirror.cut[f"{DEEP}.model"] = half
    first = fetch_official([DEEP], base=mirror.url, retries=0)
    assert DEEP in first.failed and "run the same command again to resume" in first.failed[DEEP]
    assert not official_path(DEEP).exists()
    part = official_dir() / f"{DEEP}.model.part"
    assert part.stat().st_size == half
    mirror.requests.clear()
    second = fetch_official([DEEP], base=mirror.url, retries=0)
    assert second.fetched == [DEEP] and second.bytes_downloaded == len(data) - half
    assert mirror.requests == [(f"{DEEP}.model", f"bytes={half}-")]
    assert official_path(DEEP).read_bytes() == data
    assert leftovers(official_dir()) == []


def test_interrupted_download_is_retried_within_one_fetch(cache, mirror):
    mirror.cut[f"{SMALL}.model"] = 100
    report = fetch_official([SMALL], base=mirror.url, retries=1, backoff=0.0)
    assert report.fetched == [SMALL]
    assert [r for _, r in mirror.requests] == [None, "bytes=100-"]


def test_corrupted_file_is_refused_and_nothing_is_left(cache, mirror):
    name = f"{DEEP}.model"
    data = bytearray(mirror.files[name])
    data[len(data) // 2] ^= 0xFF
    mirror.files[name] = bytes(data)
    report = fetch_official([DEEP], base=mirror.url, retries=0)
    message = report.failed[DEEP]
    assert "\n" not in message and name in message and "sha256 mismatch" in message
    assert not official_path(DEEP).exists() and leftovers(official_dir()) == []


def test_truncated_file_is_refused_and_nothing_is_left(cache, mirror):
    name = f"{SMALL}.model"
    mirror.files[name] = mirror.files[name][:-10]
    report = fetch_official([SMALL], base=mirror.url, retries=0)
    assert name in report.failed[SMALL] and "sha256 mismatch" in report.failed[SMALL]
    assert not official_dir().joinpath(name).exists() and leftovers(official_dir()) == []


def test_damaged_cached_file_is_fetched_again(cache, mirror, reference_dir):
    fetch_official([SMALL], base=mirror.url, retries=0)
    official_path(SMALL).write_bytes(b"not a model")
    with pytest.raises(EdgesrError, match="not the official file"):
        official_weights(SMALL)
    report = fetch_official([SMALL], base=mirror.url, retries=0)
    assert report.fetched == [SMALL]
    assert official_path(SMALL).read_bytes() == (reference_dir / "weights" / f"{SMALL}.model").read_bytes()


def test_file_missing_on_the_mirror_is_reported(cache, mirror):
    report = fetch_official(["eSR-TR_s4_K7_C16"], base=mirror.url, retries=0)
    assert "HTTP 404" in report.failed["eSR-TR_s4_K7_C16"]
    assert leftovers(official_dir()) == []


def test_base_url_comes_from_the_environment(cache, mirror, monkeypatch):
    monkeypatch.setenv("EDGESR_OFFICIAL_URL", mirror.url + "/")
    assert fetch_official([SMALL], retries=0).fetched == [SMALL]


def test_cache_follows_edgesr_cache_when_edgesr_data_is_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGESR_DATA", raising=False)
    monkeypatch.setenv("EDGESR_CACHE", str(tmp_path / "c"))
    assert official_path(SMALL) == tmp_path / "c" / "official" / f"{SMALL}.model"


def test_unfetched_id_names_the_fetch_command(cache):
    with pytest.raises(EdgesrError, match=f"run: edgesr weights fetch official {DEEP}$"):
        official_weights(DEEP)


def test_id_outside_the_paper_grid_is_refused(cache):
    with pytest.raises(EdgesrError, match="not one of the paper's 1185 official models"):
        fetch_official(["eSR-MAX_s2_K9_C2"])


def test_fetched_file_loads_as_the_official_state_dict(cache, mirror, reference_dir):
    from edgesr.models import load_model

    fetch_official([DEEP], base=mirror.url, retries=0)
    model = load_model(DEEP, official_weights(DEEP))
    state = torch.load(reference_dir / "weights" / f"{DEEP}.model", map_location="cpu", weights_only=True)
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value)


# --- the command line ---------------------------------------------------------------------------

def write_set(folder: Path) -> Path:
    """A one-image benchmark set (48x40 RGB gradient with noise)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 48)[None, :, None] * np.ones((40, 1, 3))
    pixels = np.clip(ramp + rng.normal(0, 20, ramp.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(folder / "a.png")
    return folder


def test_cli_fetch_prints_the_license_and_a_summary(cache, mirror):
    result = runner.invoke(app, ["weights", "fetch", "official", SMALL, DEEP, "--base-url", mirror.url, "-q"])
    assert result.exit_code == 0, result.output
    assert "GPL-3.0" in result.output and "2 fetched" in " ".join(result.output.split())
    assert official_path(DEEP).is_file()


def test_cli_fetch_reports_a_corrupted_file_on_one_line(cache, mirror):
    mirror.files[f"{SMALL}.model"] = b"x" * len(mirror.files[f"{SMALL}.model"])
    result = runner.invoke(app, ["weights", "fetch", "official", SMALL, "--base-url", mirror.url, "-q"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{SMALL}.model" in errors[0] and "sha256 mismatch" in errors[0]


def test_cli_fetch_needs_ids_or_all(cache):
    result = runner.invoke(app, ["weights", "fetch", "official"])
    assert result.exit_code == 1 and "or pass --all" in result.output
    assert LICENSE_NOTE[:20] not in result.output


def test_official_flag_needs_a_fetched_file(cache, tmp_path):
    write_set(tmp_path / "set")
    result = runner.invoke(app, ["eval", DEEP, "--official", "-d", str(tmp_path / "set")])
    assert result.exit_code == 1 and f"run: edgesr weights fetch official {DEEP}" in result.output


def test_eval_official_scores_the_official_weights(cache, mirror, reference_dir, tmp_path):
    fetch_official([DEEP], base=mirror.url, retries=0)
    data = write_set(tmp_path / "set")
    by_flag = runner.invoke(app, ["eval", DEEP, "--official", "-d", str(data), "-o", str(tmp_path / "a.json")])
    by_path = runner.invoke(app, ["eval", DEEP, "-w", str(reference_dir / "weights" / f"{DEEP}.model"),
                                  "-d", str(data), "-o", str(tmp_path / "b.json")])
    assert by_flag.exit_code == 0 and by_path.exit_code == 0, by_flag.output + by_path.output
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())


def test_upscale_official_uses_the_official_weights(cache, mirror, reference_dir, tmp_path):
    fetch_official([DEEP], base=mirror.url, retries=0)
    source = write_set(tmp_path / "set") / "a.png"
    flag = runner.invoke(app, ["upscale", str(source), "-o", str(tmp_path / "a.png"), "-m", DEEP, "--official"])
    path = runner.invoke(app, ["upscale", str(source), "-o", str(tmp_path / "b.png"), "-m", DEEP, "-w",
                               str(reference_dir / "weights" / f"{DEEP}.model")])
    assert flag.exit_code == 0 and path.exit_code == 0, flag.output + path.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))


def test_upscale_official_needs_a_model_id(cache, tmp_path):
    source = write_set(tmp_path / "set") / "a.png"
    result = runner.invoke(app, ["upscale", str(source), "-o", str(tmp_path / "o.png"), "--official"])
    assert result.exit_code == 1 and "--official needs model ids" in result.output


def test_export_official_writes_the_official_model(cache, mirror, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    fetch_official([DEEP], base=mirror.url, retries=0)
    result = runner.invoke(app, ["export", DEEP, "--official", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.onnx").is_file() and "max |difference|" in result.output


def test_bench_official_times_the_fetched_model(cache, mirror, tmp_path):
    fetch_official([DEEP], base=mirror.url, retries=0)
    result = runner.invoke(app, ["bench", DEEP, "--official", "--size", "32x48", "-r", "1", "-b", "torch",
                                 "-o", str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.output
    assert list(json.loads((tmp_path / "b.json").read_text())) == [DEEP]
    official_path(DEEP).write_bytes(b"damaged")  # the bench loads the file: a damaged one is refused
    damaged = runner.invoke(app, ["bench", DEEP, "--official", "--size", "32x48", "-r", "1"])
    assert damaged.exit_code == 1 and "not the official file" in damaged.output
    missing = runner.invoke(app, ["bench", SMALL, "--official", "--size", "32x48", "-r", "1"])
    assert missing.exit_code == 1 and f"fetch official {SMALL}" in missing.output


def test_search_official_evaluates_the_fetched_files(cache, mirror, tmp_path):
    fetch_official([SMALL], base=mirror.url, retries=0)
    data = write_set(tmp_path / "set")
    store = tmp_path / "s.sqlite"
    result = runner.invoke(app, ["search", SMALL, "--official", "--no-bicubic", "-d", str(data), "--store", str(store),
                                 "--bench-size", "16x16", "--bench-repeats", "1", "--export", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    evaluated = runner.invoke(app, ["eval", SMALL, "--official", "-d", str(data), "-o", str(tmp_path / "e.json")])
    assert evaluated.exit_code == 0, evaluated.output
    column = "psnr_set"
    searched = json.loads((tmp_path / "r.json").read_text())[SMALL]
    assert searched[column] == pytest.approx(json.loads((tmp_path / "e.json").read_text())[SMALL][column], abs=1e-4)
    unfetched = runner.invoke(app, ["search", DEEP, "--official", "-d", str(data), "--store", str(store)])
    assert unfetched.exit_code == 1 and f"fetch official {DEEP}" in unfetched.output


def test_bench_loads_the_weight_files_it_is_given(tmp_path):
    from edgesr.bench import bench

    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(EdgesrError, match="bad.model: not a readable PyTorch weight file"):
        bench([DEEP], backend="torch", repeats=1, size=(16, 16), baselines=False,
              weights={DEEP: tmp_path / "bad.model"})
