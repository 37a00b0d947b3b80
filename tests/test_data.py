"""Datasets: catalog, cache/registry, download (served from 127.0.0.1), archives, patch sampler."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgesr import EdgesrError
from edgesr.data import (CATALOG, DatasetEntry, Source, add, cache_dir, canonical_name, fetch, list_datasets,
                         list_images, pending_download, resolve_dataset)
from edgesr.data.cache import datasets_dir, downloads_dir, load_registry
from edgesr.data.patches import PatchSampler, dihedral, load_pairs
from edgesr.imaging import write_image
from edgesr.resize import downscale

rng = np.random.default_rng(0)


# ---------------------------------------------------------------- helpers: files, archives, server
def png_bytes(height: int = 12, width: int = 10, seed: int = 0) -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    from PIL import Image

    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(files: dict[str, bytes], stored: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as handle:
        for name, data in files.items():
            handle.writestr(name, data)
    return buffer.getvalue()


def make_tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as handle:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            handle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Server:
    """Serves ``files`` {path: bytes}; can ignore Range, or drop the connection after N bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ranges = True
        self.drop_after: int | None = None  # bytes sent before closing, for the next request only
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                server.requests.append({"path": self.path, "range": self.headers.get("Range", "")})
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                header = self.headers.get("Range")
                if header and server.ranges:
                    start = int(header.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.drop_after is not None:
                    body, server.drop_after = body[:server.drop_after], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """Every test gets its own empty EDGESR_DATA."""
    home = tmp_path / "edgesr-data"
    monkeypatch.setenv("EDGESR_DATA", str(home))
    return home


def entry_for(url: str, name: str = "Toy", **source) -> DatasetEntry:
    return DatasetEntry(name, "test", None, "test set served locally", (Source(url, **source),))


def leftovers() -> list[str]:
    """Everything under the cache except the registry (what a failed fetch must not leave)."""
    root = cache_dir()
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.name != "registry.json")


def image_folder(folder, count: int = 3, size: tuple[int, int] = (12, 10)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"img{i}.png").write_bytes(png_bytes(*size, seed=i))
    return folder


# ---------------------------------------------------------------- catalog and cache
def test_catalog_lists_the_benchmark_and_training_sets_with_roles():
    expected = {"Set5": "test", "Set14": "test", "BSDS100": "test", "Urban100": "test", "Manga109": "test",
                "T91": "train", "General100": "train", "DIV2K": "train", "Sun80": "train"}
    for name, role in expected.items():
        assert CATALOG[name].role == role
        sources = CATALOG[name].sources
        assert sources and all(s.url.startswith(("http://", "https://")) for s in sources)


def test_cache_dir_defaults_to_user_cache_and_follows_env(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGESR_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("sys.platform", "linux")
    assert cache_dir() == tmp_path / "xdg" / "edgesr"
    monkeypatch.setenv("EDGESR_DATA", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_kernels_and_data_share_one_cache_root_that_edgesr_cache_moves(monkeypatch, tmp_path):
    from edgesr.engine import native

    monkeypatch.delenv("EDGESR_DATA")
    monkeypatch.delenv("EDGESR_CACHE", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert native.cache_dir().parent == cache_dir() == tmp_path / "xdg" / "edgesr"
    monkeypatch.setenv("EDGESR_CACHE", str(tmp_path / "all"))
    assert native.cache_dir().parent == cache_dir() == tmp_path / "all"
    monkeypatch.setenv("EDGESR_DATA", str(tmp_path / "data"))  # moves the data only
    assert (native.cache_dir().parent, cache_dir()) == (tmp_path / "all", tmp_path / "data")


# ---------------------------------------------------------------- fetch: zip, tar.gz, checksums
def test_fetch_zip_installs_only_the_hr_images_and_verifies_sha256(server):
    archive = make_zip({"pack/HR/b.png": png_bytes(seed=1), "pack/HR/a.png": png_bytes(seed=2),
                        "pack/LR/a.png": png_bytes(6, 5), "pack/readme.txt": b"hello"})
    server.files["/toy.zip"] = archive
    sha = hashlib.sha256(archive).hexdigest()
    folder = fetch(entry_for(server.url("/toy.zip"), subdir="*/HR", sha256=sha))
    assert folder == datasets_dir() / "Toy"
    assert [p.name for p in list_images(folder)] == ["a.png", "b.png"]
    assert (folder / "a.png").read_bytes() == png_bytes(seed=2)
    assert load_registry()["fetched"]["Toy"]["sha256"] == sha
    assert leftovers() == ["datasets/Toy/a.png", "datasets/Toy/b.png"]  # archive removed after install


def test_fetch_tar_gz_finds_the_image_folder_and_records_an_unknown_checksum(server):
    archive = make_tar_gz({"Set/x1.png": png_bytes(seed=3), "Set/x2.png": png_bytes(seed=4),
                           "notes.txt": b"n"})
    server.files["/set.tar.gz"] = archive
    folder = fetch(entry_for(server.url("/set.tar.gz")))
    assert [p.name for p in list_images(folder)] == ["x1.png", "x2.png"]
    assert load_registry()["fetched"]["Toy"]["sha256"] == hashlib.sha256(archive).hexdigest()


def test_fetch_of_a_cached_dataset_does_not_download_again(server):
    server.files["/t.zip"] = make_zip({"d/a.png": png_bytes()})
    entry = entry_for(server.url("/t.zip"))
    fetch(entry)
    fetch(entry)
    assert len(server.requests) == 1


def test_checksum_mismatch_is_one_line_error_and_leaves_nothing(server):
    server.files["/t.zip"] = make_zip({"d/a.png": png_bytes()})
    with pytest.raises(EdgesrError, match="sha256 mismatch") as error:
        fetch(entry_for(server.url("/t.zip"), sha256="0" * 64))
    assert "\n" not in str(error.value)
    assert leftovers() == []


def test_corrupt_archive_member_is_clear_error_and_nothing_half_extracted(server):
    archive = bytearray(make_zip({"d/a.png": png_bytes(seed=1), "d/b.png": png_bytes(seed=2)}, stored=True))
    second = bytes(archive).index(png_bytes(seed=2))
    archive[second + 100] ^= 0xFF  # damage b.png's data: its CRC no longer matches
    server.files["/bad.zip"] = bytes(archive)
    with pytest.raises(EdgesrError, match="corrupt archive") as error:
        fetch(entry_for(server.url("/bad.zip")))
    assert "\n" not in str(error.value)
    assert leftovers() == [] and not (datasets_dir() / "Toy").exists()


def test_truncated_tar_gz_is_clear_error_and_nothing_half_extracted(server):
    archive = make_tar_gz({f"d/{i}.png": png_bytes(30, 30, seed=i) for i in range(4)})
    server.files["/cut.tar.gz"] = archive[: len(archive) * 2 // 3]  # complete HTTP body, broken gzip
    with pytest.raises(EdgesrError, match="corrupt archive") as error:
        fetch(entry_for(server.url("/cut.tar.gz")))
    assert "\n" not in str(error.value)
    assert leftovers() == [] and not (datasets_dir() / "Toy").exists()


def test_a_file_that_is_not_an_archive_is_rejected(server):
    server.files["/page.zip"] = b"<html>login required</html>"
    with pytest.raises(EdgesrError, match="not a zip or tar archive"):
        fetch(entry_for(server.url("/page.zip")))
    assert leftovers() == []


def test_missing_url_names_the_http_status(server):
    with pytest.raises(EdgesrError, match="HTTP 404"):
        fetch(entry_for(server.url("/nothing.zip")))


def test_a_failing_source_falls_back_to_the_next_mirror(server):
    server.files["/mirror.zip"] = make_zip({"d/a.png": png_bytes()})
    entry = DatasetEntry("Toy", "test", 1, "two sources", (Source(server.url("/gone.zip")),
                                                           Source(server.url("/mirror.zip"))))
    assert [p.name for p in list_images(fetch(entry))] == ["a.png"]


def test_when_every_source_fails_the_error_names_each_one(server):
    entry = DatasetEntry("Toy", "test", 1, "two sources", (Source(server.url("/a.zip")),
                                                           Source(server.url("/b.zip"))))
    with pytest.raises(EdgesrError, match=r"Toy: fetch failed: .*/a\.zip: HTTP 404.*/b\.zip: HTTP 404"):
        fetch(entry)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
@pytest.mark.parametrize("evil", ["../evil.png", "/tmp/edgesr-evil.png", "d/../../evil.png"])
def test_path_traversal_archive_is_rejected(server, tmp_path, kind, evil):
    files = {"d/a.png": png_bytes(), evil: png_bytes(seed=9)}
    server.files[f"/evil.{kind}"] = make_zip(files) if kind == "zip" else make_tar_gz(files)
    with pytest.raises(EdgesrError, match="path traversal"):
        fetch(entry_for(server.url(f"/evil.{kind}")))
    assert leftovers() == []
    assert not any(p.name == "evil.png" for p in tmp_path.rglob("*"))


# ---------------------------------------------------------------- interrupted downloads
def test_interrupted_download_keeps_part_file_then_resumes_with_range(server):
    archive = make_zip({"d/a.png": png_bytes(40, 40, seed=5)}, stored=True)
    sha = hashlib.sha256(archive).hexdigest()
    server.files["/big.zip"] = archive
    server.drop_after = 1000
    entry = entry_for(server.url("/big.zip"), sha256=sha)
    with pytest.raises(EdgesrError, match="resume"):
        fetch(entry, retries=0)
    part = downloads_dir() / "big.zip.part"
    assert part.stat().st_size == 1000 and not (datasets_dir() / "Toy").exists()
    assert pending_download(entry) == part
    folder = fetch(entry, retries=0)
    assert server.requests[-1]["range"] == "bytes=1000-"
    assert list_images(folder)[0].read_bytes() == png_bytes(40, 40, seed=5)
    assert not part.exists()


def test_dropped_connection_is_retried_within_one_fetch(server):
    archive = make_zip({"d/a.png": png_bytes(40, 40)}, stored=True)
    server.files["/big.zip"] = archive
    server.drop_after = 500
    events = []
    fetch(entry_for(server.url("/big.zip"), sha256=hashlib.sha256(archive).hexdigest()), progress=events.append,
          retries=1)
    starts = [e for e in events if e.kind == "start"]
    assert [e.done for e in starts] == [0, 500]  # the second attempt resumes at byte 500
    assert starts[-1].done + sum(e.units for e in events[events.index(starts[-1]):]) == len(archive)
    assert [r["range"] for r in server.requests] == ["", "bytes=500-"]


def test_server_without_range_support_restarts_the_download(server):
    archive = make_zip({"d/a.png": png_bytes(40, 40)}, stored=True)
    server.files["/big.zip"] = archive
    server.ranges = False
    downloads_dir().mkdir(parents=True)
    (downloads_dir() / "big.zip.part").write_bytes(b"stale bytes from another attempt")
    fetch(entry_for(server.url("/big.zip"), sha256=hashlib.sha256(archive).hexdigest()))
    assert server.requests[0]["range"].startswith("bytes=")
    assert leftovers() == ["datasets/Toy/a.png"]


# ---------------------------------------------------------------- add / resolve / list
def test_add_registers_a_folder_that_resolves_by_name_in_any_case(tmp_path):
    folder = image_folder(tmp_path / "mine")
    add("MySet", folder)
    assert resolve_dataset("myset") == folder.resolve()
    assert json.loads((cache_dir() / "registry.json").read_text())["registered"]["MySet"]["images"] == 3
    assert any(row.name == "MySet" and row.status == "registered" for row in list_datasets())


def test_add_of_a_catalog_alias_registers_the_catalog_name(tmp_path):
    folder = image_folder(tmp_path / "b100")
    add("B100", folder)
    assert resolve_dataset("BSDS100") == folder.resolve()
    assert canonical_name("bsd100") == "BSDS100"
    assert {row.name: row.status for row in list_datasets()}["BSDS100"] == "registered"


def test_add_refuses_a_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(EdgesrError, match="holds no images"):
        add("Empty", tmp_path / "empty")


def test_resolve_accepts_any_folder_of_images(tmp_path):
    folder = image_folder(tmp_path / "plain")
    assert resolve_dataset(str(folder)) == folder.resolve()


def test_resolve_never_downloads_and_says_how_to_fetch():
    with pytest.raises(EdgesrError, match=r"edgesr datasets fetch Urban100.*edgesr datasets add Urban100"):
        resolve_dataset("urban100")


def test_resolve_unknown_name_lists_what_is_known():
    with pytest.raises(EdgesrError, match=r"NoSuchSet: neither a dataset name \(.*Set5"):
        resolve_dataset("NoSuchSet")


def test_resolve_reports_a_registered_folder_that_is_gone(tmp_path):
    folder = image_folder(tmp_path / "gone")
    add("Gone", folder)
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    with pytest.raises(EdgesrError, match="no longer exists"):
        resolve_dataset("Gone")


def test_list_images_is_sorted_and_skips_other_files(tmp_path):
    folder = image_folder(tmp_path / "f", count=2)
    (folder / "z.txt").write_text("x")
    (folder / ".hidden.png").write_bytes(png_bytes())
    (folder / "A.JPG").write_bytes(b"jpeg")
    assert [p.name for p in list_images(folder)] == ["A.JPG", "img0.png", "img1.png"]


# ---------------------------------------------------------------- CLI
def test_cli_add_then_list_shows_the_registered_folder(tmp_path):
    from edgesr.cli import app

    folder = image_folder(tmp_path / "cli")
    runner = CliRunner()
    added = runner.invoke(app, ["datasets", "add", "CliSet", str(folder)])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["datasets", "list"])
    assert listed.exit_code == 0 and "CliSet" in listed.output and "registered" in listed.output


def test_cli_fetch_of_an_unknown_name_is_one_error_line():
    from edgesr.cli import app

    result = CliRunner().invoke(app, ["datasets", "fetch", "NoSuchSet"])
    assert result.exit_code == 1 and "not in the dataset catalog" in result.output


def test_cli_fetch_downloads_a_catalog_entry(server, monkeypatch):
    from edgesr.cli import app

    server.files["/c.tar.gz"] = make_tar_gz({"c/a.png": png_bytes()})
    monkeypatch.setitem(CATALOG, "CliToy", entry_for(server.url("/c.tar.gz"), name="CliToy"))
    result = CliRunner().invoke(app, ["datasets", "fetch", "clitoy"])
    assert result.exit_code == 0, result.output
    assert (datasets_dir() / "CliToy" / "a.png").is_file()


# ---------------------------------------------------------------- patch sampler
@pytest.fixture
def train_folder(tmp_path):
    """Smooth-ish RGB images of different sizes (not multiples of the scale)."""
    folder = tmp_path / "train"
    folder.mkdir()
    for i, (h, w) in enumerate([(41, 53), (64, 37), (30, 30)]):
        base = np.random.default_rng(i).random((h // 4 + 2, w // 4 + 2, 3))
        image = np.kron(base, np.ones((4, 4, 1)))[:h, :w] * 255
        write_image(folder / f"t{i}.png", image.round().astype(np.uint8))
    return folder


def test_sampler_batches_have_lr_and_hr_shapes_in_model_scale(train_folder):
    sampler = PatchSampler.from_datasets(str(train_folder), scale=3, patch_size=5, batch_size=7, seed=1)
    lr, hr = sampler.batch(0)
    assert lr.shape == (7, 1, 5, 5) and hr.shape == (7, 1, 15, 15)
    assert lr.dtype == hr.dtype == torch.float32
    assert 0.0 <= hr.min() and hr.max() <= 1.0  # studio-range luma (16..235) -> 0..1


def test_white_image_is_one_in_model_scale(tmp_path):
    write_image(tmp_path / "w.png", np.full((8, 8, 3), 255, np.uint8))
    pair = load_pairs(str(tmp_path), scale=2)[0]
    assert np.allclose(pair.hr, 1.0) and np.allclose(pair.lr, 1.0)


def test_batch_k_is_reproducible_without_replaying_earlier_steps(train_folder):
    pairs = load_pairs(str(train_folder), scale=2)
    first = PatchSampler(pairs, 2, patch_size=6, batch_size=4, seed=5)
    for step in range(4):
        first.batch(step)
    fresh = PatchSampler(pairs, 2, patch_size=6, batch_size=4, seed=5)
    assert torch.equal(first.batch(3).hr, fresh.batch(3).hr)
    assert torch.equal(first.batch(3).lr, fresh.batch(3).lr)
    assert not torch.equal(fresh.batch(3).hr, fresh.batch(4).hr)
    other_seed = PatchSampler(pairs, 2, patch_size=6, batch_size=4, seed=6)
    assert not torch.equal(fresh.batch(3).hr, other_seed.batch(3).hr)


def test_lr_patch_is_the_aligned_crop_of_the_degraded_image(train_folder):
    pairs = load_pairs(str(train_folder), scale=2)
    sampler = PatchSampler(pairs, 2, patch_size=6, batch_size=8, seed=0, augment=False)
    lr, hr = sampler.batch(2)
    where = sampler.locations(2)
    for i, (index, y, x, _) in enumerate(zip(*where, strict=True)):
        image = pairs[index].hr.astype(np.float64)
        expected_lr = downscale(image, 2)[y:y + 6, x:x + 6]
        assert np.allclose(lr[i, 0].numpy(), expected_lr, atol=1e-6)
        assert np.array_equal(hr[i, 0].numpy(), pairs[index].hr[2 * y:2 * y + 12, 2 * x:2 * x + 12])


def test_augmented_lr_equals_degradation_of_its_hr_patch_away_from_the_patch_border(train_folder):
    sampler = PatchSampler.from_datasets(str(train_folder), scale=2, patch_size=10, batch_size=16, seed=3)
    lr, hr = sampler.batch(0)
    assert len(set(sampler.locations(0).transform.tolist())) > 1  # several transforms were drawn
    margin = 2  # the x2 antialiased kernel reaches 2 LR pixels: inside that, no patch-border effect
    for i in range(16):
        degraded = downscale(hr[i, 0].numpy().astype(np.float64), 2)
        assert np.allclose(degraded[margin:-margin, margin:-margin], lr[i, 0, margin:-margin, margin:-margin],
                           atol=1e-5)


def test_dihedral_transforms_are_the_eight_distinct_symmetries():
    square = np.arange(9).reshape(3, 3)
    variants = {dihedral(square, t).tobytes() for t in range(8)}
    assert len(variants) == 8 and np.array_equal(dihedral(square, 0), square)


def test_pre_scale_shrinks_the_hr_images(train_folder):
    full = load_pairs(str(train_folder), scale=2)
    half = load_pairs(str(train_folder), scale=2, pre_scale=0.5)
    assert half[1].hr.shape == (32, 18) and full[1].hr.shape == (64, 36)


def test_several_pre_scales_give_one_pair_per_factor(train_folder):
    full = load_pairs(str(train_folder), scale=2)
    several = load_pairs(str(train_folder), scale=2, pre_scale=[1.0, 0.5])
    assert len(several) == 2 * len(full)
    assert [p.hr.shape for p in several[2:4]] == [full[1].hr.shape, (32, 18)]
    assert several[2].name.endswith("@1") and several[3].name.endswith("@0.5")
    assert np.array_equal(several[2].lr, full[1].lr)


@pytest.mark.parametrize("bad", [[], [0.5, 0.0], -1.0])
def test_pre_scales_must_be_positive_factors(train_folder, bad):
    with pytest.raises(EdgesrError, match="pre_scale"):
        load_pairs(str(train_folder), scale=2, pre_scale=bad)


def test_patches_larger_than_every_image_are_refused(train_folder):
    with pytest.raises(EdgesrError, match="smaller than a 40x40 LR patch"):
        PatchSampler.from_datasets(str(train_folder), scale=2, patch_size=40)
