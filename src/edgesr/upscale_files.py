"""Batch upscaling of image files: expand inputs, plan outputs, run, report per-file errors.

A failing file never stops the batch: its error is recorded with the file name and the rest
go on; outputs are written atomically and never replace an input. Reading (decoding), upscaling
and writing (encoding) overlap (`edgesr.stages`), so a folder takes about as long as its slowest
stage; `BatchReport.stage_seconds` says how long each stage worked.
"""

from __future__ import annotations

import glob
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgesr.engine import Upscaler
from edgesr.engine.tiling import MIN_TILE
from edgesr.errors import EdgesrError, per_file
from edgesr.imaging import IMAGE_SUFFIXES, MAX_PIXELS, is_image_path, read_image, write_image
from edgesr.models import ModelSpec
from edgesr.progress import Progress, Reporter, ignore
from edgesr.stages import run_stages
from edgesr.video import VIDEO_SUFFIXES, is_video_path, upscale_video
from edgesr.weights import default_model_id


@dataclass
class BatchReport:
    """What a batch did: files written, per-file errors, total seconds."""

    model_id: str
    scale: int
    written: list[tuple[Path, Path, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    videos: int = 0  # how many of ``written`` are videos
    frames: int = 0  # frames of those videos
    stage_seconds: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "upscale": 0.0, "write": 0.0})

    def summary(self) -> str:
        images = len(self.written) - self.videos
        parts = []
        if images or not self.videos:
            parts.append(f"{images} image{'s' if images != 1 else ''}")
        if self.videos:
            parts.append(f"{self.videos} video{'s' if self.videos != 1 else ''} ({self.frames} frames)")
        failed = f", {len(self.errors)} failed" if self.errors else ""
        return (f"upscaled {' and '.join(parts)} x{self.scale} with {self.model_id}"
                f" in {self.seconds:.2f} s{failed}")


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Files, folders (their images, sorted) and glob patterns -> image paths, plus errors."""
    paths: list[Path] = []
    errors: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_image_path(p))
            if not found:
                errors.append(f"{path}: folder holds no images")
            paths += found
        elif path.exists():
            paths.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
            if not matches:
                errors.append(f"{item}: pattern matches no files")
            paths += matches
        else:
            errors.append(f"{path}: no such file or folder")
    unique: dict[Path, Path] = {}
    for path in paths:
        unique.setdefault(path.resolve(), path)
    return list(unique.values()), errors


#: Largest --tile: a window of 16384^2 LR pixels already needs gigabytes; above it tiling bounds nothing.
MAX_TILE = 16384


def check_tile(tile: int | None) -> None:
    """``tile`` must be None (automatic), 0 (never) or MIN_TILE..MAX_TILE LR pixels."""
    if tile is not None and tile != 0 and not MIN_TILE <= tile <= MAX_TILE:
        raise EdgesrError(f"--tile {tile}: give 0 (never tile) or {MIN_TILE}..{MAX_TILE} LR pixels")


def check_output_name(output: Path) -> None:
    """A new output folder has no file extension: ``-o out.txt`` or ``-o out.gif`` is a file
    name in a format edgesr does not write, not a folder to create."""
    if output.suffix and not output.is_dir() and not (is_image_path(output) or is_video_path(output)):
        raise EdgesrError(f"{output}: {output.suffix} is not a format edgesr writes"
                          f" ({' '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)}); an output folder is"
                          " a name without an extension, or an existing folder")


def resolve_model_id(model: str | None, scale: int | None) -> str:
    """The id to run: ``model``, else the default for ``scale`` (2 when neither is given);
    a ``scale`` that contradicts the id's is an error rather than silently ignored."""
    if model is None:
        return ModelSpec.parse(default_model(scale or 2)).id
    spec = ModelSpec.parse(model)
    if scale is not None and scale != spec.scale:
        raise EdgesrError(f"--scale {scale} conflicts with {spec.id}, a x{spec.scale} model;"
                          " drop --scale or choose a model of that scale")
    return spec.id


def plan_outputs(paths: list[Path], output: Path, suffix: str | None = None) -> list[tuple[Path, Path]]:
    """Pair each input with its output path: a folder keeps the names (with ``suffix``, e.g.
    ".png", instead of each image's own); a file name needs one input."""

    if (is_image_path(output) or is_video_path(output)) and not output.is_dir():
        if len(paths) != 1:
            raise EdgesrError(f"{output}: an output file name needs exactly one input, got {len(paths)}")
        return [(paths[0], output)]
    names: dict[str, Path] = {}
    plan = []
    for path in paths:
        if path.name in names:
            raise EdgesrError(f"{path}: same file name as {names[path.name]}; the outputs would collide")
        names[path.name] = path
        name = path.name if suffix is None or is_video_path(path) else path.with_suffix(suffix).name
        plan.append((path, output / name))
    return plan


def upscale_files(inputs: list[str], output: Path, model: str | None = None, scale: int | None = None,
                  weights: Path | None = None, device: str = "cpu", dtype: str = "float32",
                  color: str = "ycbcr", max_pixels: int | None = None,
                  progress: Reporter | None = None, tile: int | None = None,
                  backend: str = "auto", video_codec: str | None = None,
                  video_options: dict[str, str] | None = None,
                  image_format: str | None = None, precision: str = "fp32") -> BatchReport:
    """Upscale every input image into ``output``; returns a `BatchReport` (errors included).

    Video files (by extension) go through `edgesr.video.upscale_video` (``video_codec`` and
    ``video_options`` choose the encoder); ``tile`` is the `Upscaler`'s seam-free tile size (None:
    only when the memory budget needs it); ``progress`` (`edgesr.progress`) gets "start" (``total``
    files), a "finished" event per file (``units`` 1; ``values``: source, target, in_size,
    out_size and the read/upscale/write seconds, or its ``error``; a video's: frames, fps, codec,
    audio, seconds) and the videos' own frame events; ``image_format`` ("png", "jpg", ...) converts the images of a folder output. ``scale``
    picks the default model; with ``model`` it must agree with the id's scale.
    """

    started = time.perf_counter()
    model_id = resolve_model_id(model, scale)
    check_tile(tile)
    check_output_name(Path(output))
    upscaler = Upscaler(model_id, weights=str(weights) if weights else None, device=device, dtype=dtype,
                        color=color, tile=tile, backend=backend, precision=precision)
    report = BatchReport(upscaler.model_id, upscaler.scale)
    paths, report.errors = expand_inputs(inputs)
    suffix = None
    if image_format is not None:
        suffix = "." + image_format.lower().lstrip(".")
        if not is_image_path(Path("x" + suffix)):
            raise EdgesrError(f"--format {image_format}: not an image format edgesr writes")
    plan = plan_outputs(paths, Path(output), suffix)
    if plan and not ((is_image_path(output) or is_video_path(output)) and not Path(output).is_dir()):
        try:
            Path(output).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise EdgesrError(f"{output}: cannot create output folder ({error.strerror})") from None
    input_set = {p.resolve() for p in paths}
    report_progress = progress or ignore
    images = [(s, t) for s, t in plan if not (is_video_path(s) or is_video_path(t))]
    videos = [(s, t) for s, t in plan if is_video_path(s) or is_video_path(t)]
    if plan:
        report_progress(Progress("upscale", "start", total=len(plan)))
    stages = report.stage_seconds

    def read(pair: tuple[Path, Path]) -> _Item:  # reader thread
        item = _Item(*pair)
        tick = time.perf_counter()
        with per_file(item.source, item.errors):
            _refuse_overwrite(item.target, input_set)
            item.image = read_image(item.source, max_pixels=max_pixels or MAX_PIXELS)
        item.times["read"] = time.perf_counter() - tick
        return item

    def upscale(item: _Item) -> _Item:  # this thread: the model
        if not item.errors:
            tick = time.perf_counter()
            with per_file(item.source, item.errors):
                item.result = upscaler.upscale(item.image)
            item.times["upscale"] = time.perf_counter() - tick
        return item

    def write(item: _Item) -> None:  # writer thread
        if not item.errors:
            tick = time.perf_counter()
            with per_file(item.source, item.errors):
                try:
                    write_image(item.target, item.result)
                except OSError as error:
                    raise EdgesrError(f"{item.target}: cannot write ({error.strerror or error})") from None
            item.times["write"] = time.perf_counter() - tick
        for name, seconds in item.times.items():
            stages[name] += seconds
        if item.errors:
            report.errors.extend(item.errors)
            values: dict[str, object] = {"error": item.errors[0]}
        else:
            report.written.append((item.source, item.target, item.times["upscale"]))
            height, width = item.image.shape[:2]
            values = {"source": item.source, "target": item.target, "in_size": (width, height),
                      "out_size": (item.result.shape[1], item.result.shape[0]), **item.times}
        item.image = item.result = None  # free the pixels now, not at the end of the batch
        report_progress(Progress("upscale", "finished", item.source.name, units=1, values=values))

    run_stages((read(pair) for pair in images), upscale, write)
    for source, target in videos:
        errors_before = len(report.errors)
        values = {}
        with per_file(source, report.errors):
            _refuse_overwrite(target, input_set)
            values = _upscale_video_file(upscaler, source, target, report, report_progress,
                                         video_codec, video_options)
        if len(report.errors) > errors_before:
            values = {"error": report.errors[-1]}
        report_progress(Progress("upscale", "finished", source.name, units=1, values=values))
    report.seconds = time.perf_counter() - started
    return report


def _refuse_overwrite(target: Path, inputs: set[Path]) -> None:
    """Outputs never replace an input of the batch (``inputs``: resolved paths)."""
    if target.resolve() in inputs:
        raise EdgesrError(f"{target}: output would overwrite an input; choose another -o")


@dataclass
class _Item:
    """One image on its way through the read -> upscale -> write stages."""

    source: Path
    target: Path
    image: object = None
    result: object = None
    errors: list[str] = field(default_factory=list)  # at most one: later stages skip the item
    times: dict[str, float] = field(default_factory=dict)


def _upscale_video_file(upscaler, source: Path, target: Path, report: BatchReport,  # noqa: ANN001
                        progress: Reporter, codec: str | None = None,
                        options: dict[str, str] | None = None) -> dict[str, object]:
    """Upscale one video into the batch's report; returns its "finished" event values."""
    if not (is_video_path(source) and is_video_path(target)):
        raise EdgesrError(f"{source} -> {target}: video goes to a video file name (.mp4, .mkv, ...)")
    video = upscale_video(upscaler, source, target, codec=codec, options=options, progress=progress)
    report.written.append((source, target, video.seconds))
    report.videos += 1
    report.frames += video.frames
    return {"source": source, "target": target, "frames": video.frames, "out_size": video.size,
            "fps": video.fps, "codec": video.codec, "audio": video.audio, "upscale": video.seconds}


def default_model(scale: int) -> str:
    """The model used when none is named: the shipped default for the scale, else bicubic."""
    return default_model_id(scale)
