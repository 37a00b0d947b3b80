"""Reliability: no input, weight file, signal or full disk ends in a traceback or a lost batch.

Each test builds its hostile input itself. CLI runs that must go through the real entry point
(signals, exit codes, stderr as a user sees it) use a subprocess; the others use Typer's runner.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from edgesr import create_model
from edgesr.atomic import TEMP_PREFIX, atomic_path, remove_stale_temporaries, write_bytes_atomic
from edgesr.cli import app
from edgesr.errors import EdgesrError, per_file
from edgesr.imaging import MAX_PIXELS, read_image
from edgesr.upscale_files import upscale_files
from edgesr.weights import save_weights

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_corpus import SEED_FORMATS, write_corpus  # noqa: E402

runner = CliRunner()
MODEL = "eSR-MAX_s2_K3_C2"  # shipped, small: the fuzz batch spends its time on decoding


def edgesr(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real `edgesr` entry point (python -m edgesr) and capture its output."""
    return subprocess.run([sys.executable, "-m", "edgesr", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def image(path: Path, size: tuple[int, int] = (24, 20), seed: int = 0) -> Path:
    data = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(data).save(path)
    return path


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text, text[-3000:]


# --- fuzzed inputs -----------------------------------------------------------------------------

def test_fuzzed_batch_reports_each_bad_file_in_one_line_and_keeps_going(tmp_path):
    seeds, mutants = write_corpus(tmp_path / "in", seed=20240515, mutants=320)
    result = edgesr("upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", MODEL)
    no_traceback(result.stderr + result.stdout)
    lines = result.stderr.splitlines()
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), [
        line for line in lines if not line.startswith(("error: ", "warning: "))][:5]
    errors = [line for line in lines if line.startswith("error: ")]
    warned = [line.split(": ")[1] for line in lines if line.startswith("warning: ")]
    assert len(warned) == len(set(warned))  # at most one warning line per file
    written = sorted((tmp_path / "out").iterdir())
    assert len(written) + len(errors) == len(seeds) + len(mutants)
    assert errors and result.returncode == 1
    assert not temporaries(tmp_path)
    for seed in seeds:  # every valid seed: the same bytes as when it runs alone
        alone = tmp_path / "alone" / seed.stem
        report = upscale_files([str(seed)], alone, model=MODEL)
        assert not report.errors, report.errors
        assert (tmp_path / "out" / seed.name).read_bytes() == (alone / seed.name).read_bytes(), seed.name


def test_fuzz_corpus_covers_every_format_the_issue_lists():
    names = {name for name, _, _ in SEED_FORMATS}
    for kind in ("png-gray16", "png-rgb16", "png-palette", "png-la", "png-1bit", "jpeg-cmyk", "bmp-rgb",
                 "tiff-gray16", "tiff-float", "tiff-multipage", "webp-rgb", "ppm-rgb", "pgm-gray"):
        assert kind in names


def test_damaged_16bit_colour_png_is_one_line_and_the_next_file_is_done(tmp_path):
    import png

    data = np.arange(20 * 24 * 3, dtype=np.uint16).reshape(20, 72) * 17
    png.Writer(24, 20, greyscale=False, bitdepth=16).write((tmp_path / "a16.png").open("wb"), data)
    raw = bytearray((tmp_path / "a16.png").read_bytes())
    raw[60] ^= 0xFF  # inside IDAT: pypng raises png.ChunkError (a checksum error)
    (tmp_path / "a16.png").write_bytes(bytes(raw))
    image(tmp_path / "b.png")
    report = upscale_files([str(tmp_path / "a16.png"), str(tmp_path / "b.png")], tmp_path / "out", model=MODEL)
    assert len(report.errors) == 1 and "a16.png: damaged or truncated image (ChunkError" in report.errors[0]
    assert (tmp_path / "out" / "b.png").is_file()


def test_any_exception_of_one_file_is_one_line_and_the_batch_goes_on(tmp_path, monkeypatch):
    import edgesr.upscale_files as batch

    for name in "abc":
        image(tmp_path / f"{name}.png")
    real = batch.read_image

    def flaky(path, **kwargs):
        if Path(path).name == "b.png":
            raise TypeError("a decoder bug")
        return real(path, **kwargs)

    monkeypatch.setattr(batch, "read_image", flaky)
    report = upscale_files([str(tmp_path)], tmp_path / "out", model=MODEL)
    assert report.errors == [f"{tmp_path / 'b.png'}: TypeError: a decoder bug at test_reliability.py:"
                             f"{report.errors[0].rsplit(':', 1)[1]}"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_per_file_lets_ctrl_c_through():
    with pytest.raises(KeyboardInterrupt), per_file("x.png", []):
        raise KeyboardInterrupt


def test_debug_shows_the_traceback_of_a_failed_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    plain = edgesr("upscale", str(tmp_path / "bad.png"), "-o", str(tmp_path / "out"))
    debug = edgesr("--debug", "upscale", str(tmp_path / "bad.png"), "-o", str(tmp_path / "out"))
    assert plain.returncode == debug.returncode == 1
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr


# --- readers -----------------------------------------------------------------------------------

def test_float_tiff_in_0_1_is_read_as_16_bit(tmp_path):
    values = np.linspace(0, 1, 20 * 24, dtype=np.float32).reshape(20, 24)
    Image.fromarray(values).save(tmp_path / "f.tif")
    got = read_image(tmp_path / "f.tif")
    assert got.dtype == np.uint16 and np.array_equal(got, np.rint(values * 65535).astype(np.uint16))


def test_float_tiff_outside_0_1_is_refused(tmp_path):
    Image.fromarray(np.full((8, 8), 300.0, np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(EdgesrError, match=r"f.tif: float image with values 300\.\.300"):
        read_image(tmp_path / "f.tif")


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR declares width x height, with no pixel data (nothing big is allocated)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)  # one short row: decoding fails, opening does not
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_max_pixels_is_the_documented_limit(tmp_path):
    with pytest.raises(EdgesrError) as under:  # 12000^2 < 16384^2: refused only for having no pixels
        read_image(png_header(tmp_path / "a.png", 12000, 12000))
    assert "damaged or truncated" in str(under.value) and "limit" not in str(under.value)
    with pytest.raises(EdgesrError, match="exceeds the limit of 268435456 pixels"):
        read_image(png_header(tmp_path / "b.png", 16385, 16384))
    with pytest.raises(EdgesrError, match="exceeds the limit of 100 pixels"):
        read_image(png_header(tmp_path / "c.png", 11, 10), max_pixels=100)
    assert MAX_PIXELS == 16384 * 16384


def test_decoder_warnings_become_one_warning_line_naming_the_file(tmp_path, caplog):
    import struct

    from PIL import TiffImagePlugin

    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[270] = "x" * 40  # ImageDescription, whose length we then overstate
    Image.fromarray(np.full((6, 6), 7, np.uint8)).save(tmp_path / "w.tif", tiffinfo=info)
    raw = bytearray((tmp_path / "w.tif").read_bytes())
    ifd = struct.unpack_from("<I", raw, 4)[0]
    for k in range(struct.unpack_from("<H", raw, ifd)[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack_from("<H", raw, entry)[0] == 270:
            struct.pack_into("<I", raw, entry + 4, 10**6)  # its length: more than the file holds
    (tmp_path / "w.tif").write_bytes(bytes(raw))
    with caplog.at_level("WARNING", logger="edgesr"):
        assert read_image(tmp_path / "w.tif").max() == 7
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'w.tif'}: Tag data larger than file. Skipping tag 270"]


# --- weights -----------------------------------------------------------------------------------

@pytest.fixture
def nan_weights(tmp_path) -> Path:
    model = create_model(MODEL)
    with torch.no_grad():
        next(model.parameters()).view(-1)[3] = float("nan")
    return save_weights(model, tmp_path / f"{MODEL}.safetensors")


def test_nan_weights_are_refused_at_load_with_the_tensor_name(nan_weights, tmp_path):
    name = next(iter(create_model(MODEL).state_dict()))
    with pytest.raises(EdgesrError, match=rf"tensor {name} holds 1 NaN or infinite values"):
        create_model(MODEL, weights=nan_weights)
    image(tmp_path / "a.png")
    result = runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
                                 "-m", MODEL, "-w", str(nan_weights), "--backend", "torch"])
    assert result.exit_code == 1 and "NaN or infinite" in result.output and not (tmp_path / "o").exists()


def test_inf_weights_are_refused_by_export_and_eval(tmp_path):
    model = create_model(MODEL)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("inf")
    path = save_weights(model, tmp_path / f"{MODEL}.safetensors")
    export = runner.invoke(app, ["export", MODEL, "-w", str(path), "-o", str(tmp_path / "m.onnx")])
    assert export.exit_code == 1 and "NaN or infinite" in export.output and not (tmp_path / "m.onnx").exists()
    (tmp_path / "set").mkdir()
    image(tmp_path / "set" / "a.png", (32, 32))
    evaluated = runner.invoke(app, ["eval", MODEL, "-w", str(path), "-d", str(tmp_path / "set")])
    assert evaluated.exit_code == 1 and "NaN or infinite" in evaluated.output


def test_parity_with_non_finite_outputs_is_an_error_not_a_figure():
    from edgesr.export_check import max_difference

    with pytest.raises(EdgesrError, match="parity not established"):
        max_difference(np.array([np.nan]), np.array([0.0]), "m.onnx")
    assert max_difference(np.array([1.0]), np.array([0.5]), "m.onnx") == 0.5


def test_search_whose_every_id_failed_exits_non_zero(tmp_path, nan_weights):
    (tmp_path / "set").mkdir()
    image(tmp_path / "set" / "a.png", (32, 32))
    result = runner.invoke(app, ["search", MODEL, "--no-bicubic", "--weights", str(nan_weights.parent),
                                 "-d", str(tmp_path / "set"), "--store", str(tmp_path / "s.sqlite"),
                                 "--bench-size", "64x64", "--bench-repeats", "1"])
    assert result.exit_code == 1, result.output
    assert "0 done, 1 failed" in result.output and "NaN or infinite" in result.output


def test_truncated_checkpoint_on_resume_is_one_line(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / f"{MODEL}.ckpt.pt").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "set").mkdir()
    image(tmp_path / "set" / "a.png", (32, 32))
    result = runner.invoke(app, ["train", MODEL, "--data", str(tmp_path / "set"), "--val", str(tmp_path / "set"),
                                 "-o", str(tmp_path / "run"), "--resume", "--steps", "2", "--device", "cpu"])
    assert result.exit_code == 1 and "not a readable checkpoint" in result.output


# --- signals and leftovers ---------------------------------------------------------------------

def wait_for_temporary(process: subprocess.Popen, folder: Path, timeout: float = 60) -> Path:
    """Poll until the running process has a temporary output file in ``folder``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and process.poll() is None:
        found = [p for p in temporaries(folder) if p.stat().st_size > 0] if folder.is_dir() else []
        if found:
            return found[0]
        time.sleep(0.002)
    raise AssertionError(f"no temporary file appeared (exit {process.poll()})")


def make_clip(path: Path, frames: int = 90, size: tuple[int, int] = (96, 64)) -> Path:
    av = pytest.importorskip("av")
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8),
                                               format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgesr", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("kind", ["image", "video"])
def test_kill_9_leaves_no_output_and_the_next_run_removes_the_leftover(tmp_path, kind):
    if kind == "image":
        source = image(tmp_path / "big.png", (1600, 1200))
        target = tmp_path / "out" / "big.png"
    else:
        source = make_clip(tmp_path / "clip.mp4")
        target = tmp_path / "out" / "clip.mp4"
    args = ("upscale", str(source), "-o", str(tmp_path / "out"), "-m", "Bicubic_s2", "--backend", "torch")
    process = start(*args)
    leftover = wait_for_temporary(process, tmp_path / "out")
    process.kill()
    process.wait()
    assert leftover.exists() and not target.exists()
    result = edgesr(*args)
    assert result.returncode == 0, result.stderr
    assert target.is_file() and not temporaries(tmp_path)


def test_sigterm_exits_cleanly_and_removes_the_temporary(tmp_path):
    source = make_clip(tmp_path / "clip.mp4")
    process = start("upscale", str(source), "-o", str(tmp_path / "out"), "-m", "Bicubic_s2", "--backend", "torch")
    wait_for_temporary(process, tmp_path / "out")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    no_traceback(stderr)
    assert not temporaries(tmp_path) and not (tmp_path / "out" / "clip.mp4").exists()


def test_stale_temporaries_of_dead_runs_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{TEMP_PREFIX}{int(dead.stdout)}-0a1b2c3d.part.png"
    live = tmp_path / f"{TEMP_PREFIX}{os.getppid()}-0a1b2c3d.part.png"
    other = tmp_path / ".notes.part.png"
    for path in (stale, live, other):
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert live.exists() and other.exists()


def test_temporary_name_is_short_for_a_244_character_file_name(tmp_path):
    target = tmp_path / ("n" * 240 + ".png")
    image(tmp_path / "a.png")
    report = upscale_files([str(tmp_path / "a.png")], target, model=MODEL)
    assert not report.errors and target.is_file()
    with atomic_path(tmp_path / ("x" * 230 + ".a-long-extension")) as tmp:  # 247 characters
        assert len(tmp.name) < 50 and tmp.name.startswith(TEMP_PREFIX)
        tmp.write_bytes(b"")


def test_outputs_have_the_usual_permissions_safetensors_too(tmp_path):
    umask = os.umask(0o022)
    try:
        save_weights(create_model(MODEL), tmp_path / "w.safetensors")
        write_bytes_atomic(tmp_path / "t.txt", b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "t.txt").stat().st_mode & 0o777 == 0o644


def test_disk_full_is_one_line_for_upscale_bench_explain_and_search(tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("no unshare to mount a small tmpfs")
    full = tmp_path / "full"
    full.mkdir()
    image(tmp_path / "a.png", (64, 48))
    (tmp_path / "set").mkdir()
    image(tmp_path / "set" / "b.png", (32, 32))
    py = f"{sys.executable} -m edgesr"
    script = f"""
mount -t tmpfs -o size=64k tmpfs {full} || exit 77
head -c 1000000 /dev/zero > {full}/filler 2>/dev/null
{py} upscale {tmp_path}/a.png -o {full}/out.png -m {MODEL}; echo "rc=$?"
{py} bench {MODEL} --size 64x64 --repeats 1 -o {full}/rows.json; echo "rc=$?"
{py} explain {MODEL} -o {full}; echo "rc=$?"
{py} search {MODEL} --no-bicubic -d {tmp_path}/set --store {full}/s.sqlite --work-dir {tmp_path}/work --bench-size 64x64 --bench-repeats 1; echo "rc=$?"
ls -A {full}
"""
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    if result.returncode == 77 or "unshare:" in result.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()[:200]}")
    no_traceback(result.stdout + result.stderr)
    assert result.stdout.count("rc=1") == 4, result.stdout + result.stderr
    assert result.stderr.count("No space left on device") >= 3, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "filler"  # no temporary and no partial file left


# --- every traceback of the issue --------------------------------------------------------------

def one_line_error(result, text: str) -> None:
    assert result.exit_code == 1, result.output
    no_traceback(result.output)
    assert text in result.output, result.output


def test_unknown_device_is_one_line(tmp_path):
    image(tmp_path / "a.png")
    one_line_error(runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
                                       "--device", "tpu"]), "--device 'tpu': choose cpu, cuda, cuda:N or auto")


def test_video_into_a_missing_folder_is_one_line(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=3, size=(32, 24))
    one_line_error(runner.invoke(app, ["upscale", str(clip), "-o", str(tmp_path / "nodir" / "clip.mp4")]),
                   "folder")
    assert not (tmp_path / "nodir").exists()


def test_audio_stream_without_a_decoder_is_dropped_not_a_crash(tmp_path, monkeypatch):
    import av

    import edgesr.video as video

    class Stream:  # what PyAV gives for a codec FFmpeg does not know: no codec context
        codec_context, index = None, 1

    monkeypatch.setattr(video, "_can_copy", lambda *args: False)
    with av.open(str(tmp_path / "o.mp4"), "w") as output:
        plan, note = video._add_audio_streams(output, [Stream()], tmp_path / "in.mp4")
        output.add_stream("mpeg4", rate=25)
    assert plan == {} and note == "dropped (an unknown codec does not fit the output container)"


def test_export_onto_a_folder_is_one_line(tmp_path):
    one_line_error(runner.invoke(app, ["export", MODEL, "-o", str(tmp_path), "--no-check"]), "is a folder")


def test_train_batch_size_zero_is_one_line(tmp_path):
    one_line_error(runner.invoke(app, ["train", MODEL, "--batch-size", "0", "-o", str(tmp_path / "r")]),
                   "--batch-size (0)")


def test_train_pre_scale_that_is_not_a_number_is_one_line(tmp_path):
    one_line_error(runner.invoke(app, ["train", MODEL, "--pre-scale", "1,half", "-o", str(tmp_path / "r")]),
                   "--pre-scale '1,half'")


def test_markup_in_file_names_is_printed_as_written(tmp_path):
    (tmp_path / "[").mkdir()
    image(tmp_path / "[" / "x].png")
    image(tmp_path / "[bold]y.png")
    result = edgesr("upscale", str(tmp_path / "[" / "x].png"), str(tmp_path / "[bold]y.png"), "-o",
                    str(tmp_path / "out"), "-m", MODEL)
    assert result.returncode == 0, result.stderr
    assert "[bold]y.png ->" in result.stdout and "[/x].png ->" in result.stdout
    assert (tmp_path / "out" / "x].png").is_file() and (tmp_path / "out" / "[bold]y.png").is_file()


@pytest.mark.parametrize("name", ["out.txt", "out.gif"])
def test_output_with_a_foreign_extension_creates_no_folder(tmp_path, name):
    image(tmp_path / "a.png")
    one_line_error(runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / name)]),
                   "is not a format edgesr writes")
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("tile", ["-5", "1", "99999999"])
def test_tile_out_of_range_is_one_line(tmp_path, tile):
    image(tmp_path / "a.png")
    one_line_error(runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
                                       "--tile", tile]), f"--tile {tile}: give 0")


def test_scale_that_contradicts_the_model_is_one_line(tmp_path):
    image(tmp_path / "a.png")
    one_line_error(runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
                                       "-m", "eSR-TM_s3_K7_C16", "--scale", "2"]), "--scale 2 conflicts")
    assert not (tmp_path / "o").exists()


def test_one_tiny_image_is_skipped_and_the_eval_goes_on(tmp_path):
    (tmp_path / "set").mkdir()
    image(tmp_path / "set" / "a.png", (32, 32))
    image(tmp_path / "set" / "b.png", (40, 36), seed=1)
    image(tmp_path / "set" / "tiny.png", (1, 1))
    result = runner.invoke(app, ["eval", MODEL, "-d", str(tmp_path / "set"), "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    no_traceback(result.output)
    assert "tiny.png: image of 1x1 is too small for x2 (skipped)" in result.output
    assert "set x2: scores over 2 of 3 images (1 skipped)" in result.output
    assert "psnr_set" in (tmp_path / "r.json").read_text()


def test_train_with_a_missing_dataset_leaves_no_folder(tmp_path):
    result = runner.invoke(app, ["train", MODEL, "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "r"),
                                 "--steps", "2", "--device", "cpu"])
    assert result.exit_code == 1 and not (tmp_path / "r").exists()


def tiny_training(tmp_path: Path) -> list[str]:
    (tmp_path / "set").mkdir(exist_ok=True)
    for k in range(2):
        image(tmp_path / "set" / f"{k}.png", (48, 40), seed=k)
    return ["train", MODEL, "--data", str(tmp_path / "set"), "--val", str(tmp_path / "set"), "-o",
            str(tmp_path / "r"), "--steps", "2", "--val-every", "2", "--batch-size", "256", "--device", "cpu"]


def test_resume_of_a_finished_run_keeps_its_scores(tmp_path):
    import json

    args = tiny_training(tmp_path)
    assert runner.invoke(app, args).exit_code == 0
    sidecar = tmp_path / "r" / f"{MODEL}.json"
    before = json.loads(sidecar.read_text())["val"]
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert before and json.loads(sidecar.read_text())["val"] == before


def test_ctrl_c_before_the_first_checkpoint_names_no_checkpoint(tmp_path):
    from edgesr.train import TrainConfig, train

    tiny_training(tmp_path)

    def interrupt(event: dict) -> None:
        raise KeyboardInterrupt

    config = TrainConfig(MODEL, data=[str(tmp_path / "set")], val=[str(tmp_path / "set")], steps=4, val_every=4,
                         batch_size=256, device="cpu")
    with pytest.raises(EdgesrError) as error:
        train(config, out=tmp_path / "r", progress=interrupt)
    assert "before the first checkpoint" in str(error.value) and "ckpt" not in str(error.value)
    assert not list((tmp_path / "r").glob("*.ckpt.pt"))


def test_a_bad_training_image_is_skipped_with_one_line(tmp_path):
    args = tiny_training(tmp_path)
    (tmp_path / "set" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (tmp_path / "val").mkdir()
    image(tmp_path / "val" / "v.png", (48, 40))
    args[args.index("--val") + 1] = str(tmp_path / "val")
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    no_traceback(result.output)
    assert "bad.png: " in result.output and "(skipped)" in result.output
    assert (tmp_path / "r" / f"{MODEL}.safetensors").is_file()


def test_explain_with_a_damaged_image_is_one_line(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    one_line_error(runner.invoke(app, ["explain", MODEL, "-i", str(tmp_path / "bad.jpg"), "-o", str(tmp_path / "x")]),
                   "bad.jpg: ")
