"""Batch upscaling of image files: expand inputs, plan outputs, run, report per-file errors.

A failing file never stops the batch: its error is recorded with the file name and the rest
go on; outputs are written atomically and never replace an input.
"""

from __future__ import annotations

import glob
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edgesr.errors import EdgesrError, per_file
from edgesr.imaging import is_image_path, read_image, write_image
from edgesr.video import is_video_path


@dataclass
class BatchReport:
    """What a batch did: files written, per-file errors, total seconds."""

    model_id: str
    scale: int
    written: list[tuple[Path, Path, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        done = len(self.written)
        failed = f", {len(self.errors)} failed" if self.errors else ""
        return (f"upscaled {done} image{'s' if done != 1 else ''} x{self.scale} with {self.model_id}"
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
    from edgesr.engine.tiling import MIN_TILE

    if tile is not None and tile != 0 and not MIN_TILE <= tile <= MAX_TILE:
        raise EdgesrError(f"--tile {tile}: give 0 (never tile) or {MIN_TILE}..{MAX_TILE} LR pixels")


def check_output_name(output: Path) -> None:
    """A new output folder has no file extension: ``-o out.txt`` or ``-o out.gif`` is a file
    name in a format edgesr does not write, not a folder to create."""
    if output.suffix and not output.is_dir() and not (is_image_path(output) or is_video_path(output)):
        from edgesr.imaging import IMAGE_SUFFIXES
        from edgesr.video import VIDEO_SUFFIXES

        raise EdgesrError(f"{output}: {output.suffix} is not a format edgesr writes"
                          f" ({' '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)}); an output folder is"
                          " a name without an extension, or an existing folder")


def resolve_model_id(model: str | None, scale: int | None) -> str:
    """The id to run: ``model``, else the default for ``scale`` (2 when neither is given);
    a ``scale`` that contradicts the id's is an error rather than silently ignored."""
    from edgesr.models import ModelSpec

    if model is None:
        return ModelSpec.parse(default_model(scale or 2)).id
    spec = ModelSpec.parse(model)
    if scale is not None and scale != spec.scale:
        raise EdgesrError(f"--scale {scale} conflicts with {spec.id}, a x{spec.scale} model;"
                          " drop --scale or choose a model of that scale")
    return spec.id


def plan_outputs(paths: list[Path], output: Path) -> list[tuple[Path, Path]]:
    """Pair each input with its output path: a folder keeps the names; a file name needs one input."""
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
        plan.append((path, output / path.name))
    return plan


def upscale_files(inputs: list[str], output: Path, model: str | None = None, scale: int | None = None,
                  weights: Path | None = None, device: str = "cpu", dtype: str = "float32",
                  color: str = "ycbcr", max_pixels: int | None = None,
                  console: Console | None = None, tile: int | None = None,
                  backend: str = "torch") -> BatchReport:
    """Upscale every input image into ``output``; returns a `BatchReport` (errors included).

    Video files (by extension) go through `edgesr.video.upscale_video`; ``tile`` is the
    `Upscaler`'s seam-free tile size (None: only when the memory budget needs it). ``scale``
    picks the default model; with ``model`` it must agree with the id's scale.
    """
    from edgesr.engine import Upscaler
    from edgesr.imaging import MAX_PIXELS
    from edgesr.weights import shipped_manifest

    started = time.perf_counter()
    model_id = resolve_model_id(model, scale)
    check_tile(tile)
    check_output_name(Path(output))
    pretrained = weights is None and model_id in shipped_manifest()["models"]
    if weights is None and not pretrained and not model_id.startswith("Bicubic_"):
        raise EdgesrError(f"{model_id}: no shipped weights for this id; pass --weights FILE"
                          f" (shipped: {', '.join(sorted(shipped_manifest()['models'])) or 'none'})")
    upscaler = Upscaler(model_id, weights=str(weights) if weights else None, pretrained=pretrained, device=device,
                        dtype=dtype, color=color, tile=tile, backend=backend)
    report = BatchReport(upscaler.model_id, upscaler.scale)
    paths, report.errors = expand_inputs(inputs)
    plan = plan_outputs(paths, Path(output))
    if plan and not ((is_image_path(output) or is_video_path(output)) and not Path(output).is_dir()):
        try:
            Path(output).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise EdgesrError(f"{output}: cannot create output folder ({error.strerror})") from None
    input_set = {p.resolve() for p in paths}
    console = console or Console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not plan) as progress:
        task = progress.add_task("upscaling", total=len(plan))
        for source, target in plan:
            progress.update(task, description=escape(source.name))
            with per_file(source, report.errors):
                if target.resolve() in input_set:
                    raise EdgesrError(f"{target}: output would overwrite an input; choose another -o")
                if is_video_path(source) or is_video_path(target):
                    _upscale_video_file(upscaler, source, target, report, console, progress)
                    progress.advance(task)
                    continue
                image = read_image(source, max_pixels=max_pixels or MAX_PIXELS)
                tick = time.perf_counter()
                result = upscaler.upscale(image)
                elapsed = time.perf_counter() - tick
                try:
                    write_image(target, result)
                except OSError as error:
                    raise EdgesrError(f"{target}: cannot write ({error.strerror or error})") from None
                report.written.append((source, target, elapsed))
                height, width = image.shape[:2]
                console.print(f"{source} -> {target}  {width}x{height} -> {result.shape[1]}x{result.shape[0]}"
                              f"  {elapsed * 1000:.0f} ms", highlight=False, markup=False)
            progress.advance(task)
    report.seconds = time.perf_counter() - started
    return report


def _upscale_video_file(upscaler, source: Path, target: Path, report: BatchReport,  # noqa: ANN001
                        console: Console, progress: Progress) -> None:
    from edgesr.video import upscale_video

    if not (is_video_path(source) and is_video_path(target)):
        raise EdgesrError(f"{source} -> {target}: video goes to a video file name (.mp4, .mkv, ...)")
    video = upscale_video(upscaler, source, target, console=console, progress=progress)
    report.written.append((source, target, video.seconds))
    console.print(f"{source} -> {target}  {video.frames} frames {video.size[0]}x{video.size[1]}"
                  f" at {video.fps:g} fps, {video.codec}, audio {video.audio},"
                  f" {video.frames / max(video.seconds, 1e-9):.1f} frames/s", highlight=False, markup=False)


def default_model(scale: int) -> str:
    """The model used when none is named: the shipped default for the scale, else bicubic."""
    from edgesr.weights import default_model_id

    return default_model_id(scale)
