"""The ``edgesr`` command line: thin Typer commands over the library, output through Rich.

Every user-facing failure is an `EdgesrError`; `main` prints it as one red line and exits 1.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgesr.errors import EdgesrError, Terminated, describe, log
from edgesr.progress import Progress as ProgressEvent

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="edge-SR super-resolution: upscale, evaluate, train, benchmark, search.")
console = Console()
err_console = Console(stderr=True)


def print_error(message: str) -> None:
    """One red error line; the message is text, never Rich markup (file names like ``[b].png``)."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str) -> "typer.Exit":
    """Print one error line and return the exit to raise."""
    print_error(message)
    return typer.Exit(code=1)


def command(name: str, group: typer.Typer = app) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a command of ``group``: the one place where a user-facing failure (`EdgesrError`)
    becomes one red line and exit code 1."""
    def register(function: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(function)
        def run(*args: object, **kwargs: object) -> None:
            try:
                function(*args, **kwargs)
            except EdgesrError as error:
                raise fail(str(error)) from None

        return group.command(name)(run)

    return register


class _LineHandler(logging.Handler):
    """The library's log as CLI lines: warnings one yellow line each, DEBUG records with their
    traceback (``--debug``)."""

    def emit(self, record: logging.LogRecord) -> None:
        text = escape(record.getMessage())
        if record.levelno >= logging.WARNING:
            err_console.print(f"[yellow]warning:[/yellow] {text}", highlight=False, soft_wrap=True)
        else:
            err_console.print(f"[dim]debug:[/dim] {text}", highlight=False, soft_wrap=True)
            if record.exc_info:
                import traceback

                err_console.print("".join(traceback.format_exception(*record.exc_info)).rstrip(),
                                  highlight=False, markup=False, soft_wrap=True)


def _debug_enabled() -> bool:
    return os.environ.get("EDGESR_DEBUG", "") not in ("", "0")


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show the traceback of every failure (also EDGESR_DEBUG=1).")) -> None:
    """edge-SR super-resolution: upscale, evaluate, train, benchmark, search."""
    if debug:
        os.environ["EDGESR_DEBUG"] = "1"
    log.handlers[:] = [_LineHandler()]  # replaces, so that repeated invocations in one process print once
    log.setLevel(logging.DEBUG if _debug_enabled() else logging.WARNING)


def check_device(device: str) -> str:
    """``--device``: cpu, cuda, cuda:N or auto; anything else is a one-line error, not torch's."""
    kind, _, index = device.partition(":")
    if device == "auto" or (kind in ("cpu", "cuda") and (not index or index.isdigit())):
        return device
    raise EdgesrError(f"--device {device!r}: choose cpu, cuda, cuda:N or auto")


def parse_factors(text: str | None) -> list[float] | None:
    """``--pre-scale``: one factor or a comma-separated list (`TrainConfig` records one as a float);
    a word is a one-line error."""
    if text is None:
        return None
    try:
        return [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise EdgesrError(f"--pre-scale {text!r}: give factors like 0.5 or 1,0.9,0.8,0.7,0.6") from None


def check_finite_table(table: dict[str, dict[str, float]]) -> None:
    """Never report a NaN or infinite score as a result."""
    for model_id, row in table.items():
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise EdgesrError(f"{model_id}: non-finite {', '.join(bad)} (the model's outputs are NaN or"
                              " infinite); no result reported")


OFFICIAL_HELP = "Use the paper's official weights of the id, fetched with `edgesr weights fetch official ID` (GPL-3)."


@command("models")
def models_command(
    family: Optional[str] = typer.Option(None, "--family", "-f", help="eSR-MAX, eSR-TM, eSR-TR, eSR-CNN, ESPCN, FSRCNN or Bicubic."),
    scale: Optional[int] = typer.Option(None, "--scale", "-s", help="Upscaling factor (2, 3 or 4)."),
    shipped: bool = typer.Option(False, "--shipped", help="Only the models whose trained weights ship with edgesr, with their measured metrics."),
) -> None:
    """List the model ids of the paper's grid with their parameter counts."""
    from edgesr.models import count_parameters, create_model, list_models
    from edgesr.weights import shipped_manifest

    manifest = shipped_manifest()
    ids = list_models(family=family, scale=scale, shipped=shipped)
    if not ids:
        raise fail(f"no {'shipped ' if shipped else ''}model ids match family={family} scale={scale}")
    defaults = set(manifest["defaults"].values())
    if shipped:
        columns = {"psnr_Set5": "Set5 dB", "ssim_Set5": "Set5 SSIM", "psnr_Set14": "Set14 dB",
                   "ssim_Set14": "Set14 SSIM"}
        table = Table(box=None)
        table.add_column("id (* default)", no_wrap=True)
        for header in ("parameters", *columns.values()):
            table.add_column(header, justify="right", no_wrap=True)
        for model_id in ids:
            metrics = manifest["models"][model_id].get("metrics", {})
            name = f"{model_id} *" if model_id in defaults else model_id
            table.add_row(name, str(count_parameters(create_model(model_id))),
                          *[f"{metrics[c]:.4f}" if c in metrics else "-" for c in columns])
    else:
        table = Table(box=None)
        table.add_column("id", no_wrap=True)
        for header in ("family", "scale", "parameters"):
            table.add_column(header, no_wrap=True)
        for model_id in ids:
            model = create_model(model_id)
            table.add_row(model_id, model.spec.family, str(model.spec.scale), str(count_parameters(model)))
    console.print(table)
    console.print(f"{len(ids)} models")


@command("upscale")
def upscale_command(
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder (created), or a file name for a single input."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model id, e.g. eSR-TM_s2_K7_C16."),
    scale: Optional[int] = typer.Option(None, "--scale", "-s", help="Upscaling factor when --model is not given (default 2); with --model it must match the id."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Official .model or edgesr .safetensors file."),
    official: bool = typer.Option(False, "--official", help=OFFICIAL_HELP),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, float16 (cuda) or bfloat16."),
    color: str = typer.Option("ycbcr", "--color", help="ycbcr: model on luma, bicubic chroma; rgb: model on each channel."),
    max_pixels: int = typer.Option(16384 * 16384, "--max-pixels", help="Refuse larger images (decompression-bomb guard)."),
    tile: Optional[int] = typer.Option(None, "--tile", help="Seam-free tiles of N LR pixels (bit-identical output, bounded memory); default: only when needed, 0: never."),
    backend: str = typer.Option("auto", "--backend", help="auto (fastest correct engine), torch, fused, openvino, triton (CUDA), cudagraph (CUDA) or onnxruntime."),
    precision: str = typer.Option("fp32", "--precision", help="Conv arithmetic of eSR-MAX/TM/TR in the fused kernel: fp32, or opt-in bf16/int8 (x86 AVX512-BF16/VNNI), fp16 (ARMv8.2-A); README: what each costs."),
    codec: Optional[str] = typer.Option(None, "--codec", help="Video encoder (default libx264, else mpeg4), e.g. libx265, libvpx-vp9."),
    crf: Optional[int] = typer.Option(None, "--crf", help="Video quality (x264/x265 CRF; default 18, lower is better)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Video encoder preset (x264/x265; default medium), e.g. veryfast."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print each file's read, upscale and write times, and stage totals."),
    image_format: Optional[str] = typer.Option(None, "--format", help="Image format of a folder output (png, jpg, webp, ...); default: each input's own."),
) -> None:
    """Upscale images or videos (.mp4, .mkv, ...) with one model; other files in the batch go on when one fails."""
    from edgesr.cli_views import UpscaleView
    from edgesr.upscale_files import upscale_files

    options = {k: str(v) for k, v in (("crf", crf), ("preset", preset)) if v is not None}
    if official:
        from edgesr.official import official_files

        weights = official_files([model], weights)[0]
    with UpscaleView(console, verbose) as view:
        report = upscale_files(inputs, output, model=model, scale=scale, weights=weights,
                               device=check_device(device), dtype=dtype, color=color, max_pixels=max_pixels,
                               tile=tile, backend=backend, precision=precision, progress=view, video_codec=codec,
                               video_options=options or None, image_format=image_format)
    if verbose and view.images:
        console.print("stages: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in report.stage_seconds.items())
                      + f" of work; wall {report.seconds:.2f} s", highlight=False)
    for message in report.errors:
        print_error(message)
    console.print(report.summary(), highlight=False)
    if report.errors:
        raise typer.Exit(code=1)


datasets_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Benchmark and training image sets: list, fetch, register local folders.")
app.add_typer(datasets_app, name="datasets")


@command("list", datasets_app)
def datasets_list_command() -> None:
    """List catalog datasets and registered folders with their status (registered/cached/not fetched)."""
    from edgesr.data import cache_dir, list_datasets

    rows = list_datasets()
    table = Table("name", "role", "status", "images", "folder", box=None)
    for row in rows:
        color = {"registered": "green", "cached": "cyan"}.get(row.status, "dim")
        table.add_row(row.name, row.role, f"[{color}]{row.status}[/{color}]",
                      "" if row.images is None else str(row.images), str(row.path or ""))
    console.print(table)
    console.print(f"cache: {cache_dir()} (set EDGESR_DATA or EDGESR_CACHE to move it)", highlight=False)


@command("fetch", datasets_app)
def datasets_fetch_command(
    name: str = typer.Argument(..., help="Catalog name, e.g. Set5, Urban100, DIV2K (see `edgesr datasets list`)."),
    force: bool = typer.Option(False, "--force", help="Download and install again even if cached."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Download a catalog dataset into the cache (resumes interrupted downloads, checks checksums)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from edgesr.data import fetch, list_images
    from edgesr.data.cache import load_registry

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=err_console, disable=quiet, transient=True) as bar:

        def show(event: ProgressEvent) -> None:
            if event.kind == "start":
                bar.add_task(f"downloading {event.item}", total=event.total, completed=event.done or 0)
            else:
                bar.update(bar.task_ids[-1], advance=event.units)

        folder = fetch(name, progress=show, force=force)
    count = len(list_images(folder))
    info = load_registry()["fetched"].get(folder.name, {})
    console.print(f"{folder.name}: {count} images in {folder}", highlight=False)
    if info and not info.get("checksum_known", True):
        console.print(f"sha256 {info['sha256']} of {info['url']} (no checksum in the catalog; recorded in the"
                      " registry)", highlight=False)


@command("add", datasets_app)
def datasets_add_command(
    name: str = typer.Argument(..., help="Name to use wherever a dataset is expected, e.g. Set5."),
    folder: Path = typer.Argument(..., help="Folder holding the HR images."),
) -> None:
    """Register a local folder of images under a name, for every later command."""
    from edgesr.data import add, canonical_name, list_images

    path = add(name, folder)
    console.print(f"{canonical_name(name)}: registered {path} ({len(list_images(path))} images)", highlight=False)


weights_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="Weight files: fetch the paper's official ones into the cache.")
app.add_typer(weights_app, name="weights")


@command("fetch", weights_app)
def weights_fetch_command(
    source: str = typer.Argument(..., help="official: the paper's 1185 files (GPL-3) from its repository."),
    ids: Optional[list[str]] = typer.Argument(None, help="Model ids, e.g. FSRCNN_s2_D56_S12_M4."),
    fetch_all: bool = typer.Option(False, "--all", help="All 1185 official files (about 30 MB)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Mirror with the official layout <base>/model-files/<id>.model (also EDGESR_OFFICIAL_URL)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Download official weight files into the cache, verified against their sha256 (resumes interrupted downloads)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from edgesr.official import LICENSE_NOTE, fetch_official, file_url, official_dir

    if source != "official":
        raise EdgesrError(f"unknown weights source {source!r}; choose official")
    if bool(ids) == fetch_all:
        raise EdgesrError("name the model ids to fetch, or pass --all (not both)")
    err_console.print(f"[yellow]license:[/yellow] {escape(LICENSE_NOTE)}", highlight=False, soft_wrap=True)
    with Progress(TextColumn("fetch"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  console=err_console, transient=True, disable=quiet) as bar:
        task = bar.add_task("", total=1185 if fetch_all else len(ids or []))
        report = fetch_official(None if fetch_all else ids, base=base_url,
                                on_file=lambda i, status: bar.update(task, advance=1, description=i))
    for message in report.failed.values():
        print_error(message)
    console.print(f"{len(report.fetched)} fetched ({report.bytes_downloaded} bytes), {len(report.cached)} already"
                  f" cached, {len(report.failed)} failed; from {file_url('<id>', base_url)} into {official_dir()}",
                  highlight=False, markup=False)
    if report.failed:
        raise typer.Exit(code=1)


@command("eval")
def eval_command(
    models: Optional[list[str]] = typer.Argument(None, help="Model ids; omit with --weights FOLDER to evaluate every id found there."),
    datasets: str = typer.Option("Set5,Set14", "--datasets", "-d", help="Comma-separated dataset names or folders of HR images."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Weight file (one model) or folder of <id>.model / <id>.safetensors."),
    official: bool = typer.Option(False, "--official", help="Evaluate the paper's official weights of the ids, fetched with `edgesr weights fetch official IDS` (GPL-3)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the table: .json ({id: {column: value}}) or .csv."),
    compare: Optional[Path] = typer.Option(None, "--compare", help="Reference table (.json/.csv) to print differences against."),
    per_image: bool = typer.Option(False, "--per-image", help="Also print (and with --output, write <name>.per_image.csv) per-image results."),
    save_images: Optional[Path] = typer.Option(None, "--save-images", help="Folder for the outputs: <id>/<set>/<image>.png."),
    protocol: str = typer.Option("paper", "--protocol", help="paper: model sees (Y-16)/219, float LR (reproduces the paper); standard: Y/255, 8-bit LR and outputs."),
    resize: str = typer.Option("torch", "--resize", help="LR degradation: torch (antialiased bicubic, the measured protocol) or matlab (imresize port)."),
    scale: Optional[int] = typer.Option(None, "--scale", "-s", help="Only evaluate the models of this scale."),
    lpips: bool = typer.Option(False, "--lpips", help="Add LPIPS columns when the lpips package and its weights are on disk."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch CPU threads (default: torch's choice)."),
    backend: str = typer.Option("auto", "--backend", help="auto: fused C kernel for one-layer models when it compiles (same borders, scores equal within 1e-7 dB), OpenVINO for the deep families with the openvino extra (within 1e-6 dB); torch: the model's own forward (reference)."),
    precision: str = typer.Option("fp32", "--precision", help="The fused kernel's conv precision for one-layer models: fp32, bf16, int8 or fp16 (what each costs in PSNR)."),
) -> None:
    """Evaluate models on benchmark sets: PSNR/SSIM per set with the paper's column names."""
    import torch
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from edgesr.evaluate import count_images, evaluate, resolve_models
    from edgesr.results import (check_table_path, compare_tables, per_image_path, read_table, table_columns,
                                write_per_image, write_table)

    if threads is not None:
        torch.set_num_threads(max(1, threads))
    names = [d.strip() for d in datasets.split(",") if d.strip()]
    if not names:
        raise EdgesrError("--datasets names no dataset")
    if resize not in ("torch", "matlab"):
        raise EdgesrError(f"unknown --resize {resize!r}; choose torch or matlab")
    if output is not None:
        check_table_path(output)
    reference = read_table(compare) if compare is not None else None
    entries = resolve_models(models or [], weights, scale)
    if official:
        from edgesr.evaluate import ModelEntry
        from edgesr.official import official_files

        files = official_files([e.id for e in entries], weights)
        entries = [ModelEntry(e.id, path) for e, path in zip(entries, files)]
    total = len(entries) * count_images(names)
    with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("eval", total=total)
        result = evaluate(entries, names, protocol=protocol, resize=resize, per_image=per_image,
                          save_images=save_images, lpips=lpips, backend=backend, precision=precision,
                          progress=lambda event: bar.advance(task, event.units))
    check_finite_table(result.table)
    if output is not None:
        write_table(result.table, output)
        if per_image:
            write_per_image(result.per_image, per_image_path(output))
    for note in result.notes:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False, soft_wrap=True)
    columns = table_columns(result.table)
    table = Table("id", *columns, box=None)
    for model_id, row in result.table.items():
        table.add_row(model_id, *(_cell(c, row.get(c)) for c in columns))
    console.print(table)
    if per_image:
        rows = Table("id", "dataset", "image", "psnr", "ssim", box=None)
        for r in result.per_image:
            rows.add_row(r["id"], r["dataset"], r["image"], f"{r['psnr']:.4f}", f"{r['ssim']:.5f}")
        console.print(rows)
    if reference is not None:
        deltas, means = compare_tables(result.table, reference)
        if not deltas:
            err_console.print(f"[yellow]note:[/yellow] {escape(str(compare))} shares no model id with these results")
        else:
            diff = Table("id", *(f"Δ{c}" for c in means), box=None)
            for model_id, row in deltas.items():
                diff.add_row(model_id, *(_cell(c, row.get(c), signed=True) for c in means))
            diff.add_row("mean |Δ|", *(_cell(c, v) for c, v in means.items()), style="bold")
            console.print(f"difference to {compare}:", highlight=False)
            console.print(diff)
    images = count_images(names)
    used = f"{images - len(result.skipped)} of {images}" if result.skipped else f"{images}"
    console.print(f"{len(result.table)} model{'s' if len(result.table) != 1 else ''} x {used} images"
                  f" ({protocol} protocol) in {result.seconds:.1f} s"
                  + (f"; table written to {output}" if output is not None else ""), highlight=False, markup=False)
    for message in result.skipped:
        print_error(f"{message} (skipped)")
    if result.skipped:
        raise typer.Exit(code=1)


def _cell(column: str, value: object, signed: bool = False) -> str:
    """Table cell: PSNR 4 decimals, SSIM/LPIPS 5, counts as integers."""
    if value is None:
        return ""
    if column == "parameters":
        return str(int(value))
    digits = 4 if column.startswith("psnr") else 5
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


@command("bench")
def bench_command(
    models: Optional[list[str]] = typer.Argument(None, help="Model ids (default: the speed table's five); 'Bicubic' means Bicubic_s<scale>."),
    scale: Optional[int] = typer.Option(None, "--scale", "-s", help="Only bench the models of this scale."),
    backend: str = typer.Option("auto", "--backend", "-b", help="auto, fused, openvino, triton, cudagraph, torch or onnxruntime."),
    official: bool = typer.Option(False, "--official", help="Run the paper's official weights of the ids, fetched with `edgesr weights fetch official IDS` (GPL-3)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Threads for every engine and baseline (Pillow is single-threaded)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32 (cpu default), float16 (cuda default) or bfloat16."),
    repeats: int = typer.Option(10, "--repeats", "-r", help="Timed runs per engine and baseline (medians reported)."),
    size: str = typer.Option("1080x1920", "--size", help="Output size HxW; the input is (H/s) x (W/s)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write rows: .json ({id: {speed_cpu, ms_cpu, ...}}) or .csv."),
    pipeline: str = typer.Option("luma", "--pipeline", help="What is timed: luma (the kernel on a uint8 plane), gray, rgb or rgb16 (Upscaler.upscale on that array), video (edgesr upscale clip.mp4, frames/s)."),
    frames: int = typer.Option(300, "--frames", help="--pipeline video: frames of the synthetic 640x480 H.264 + AAC clip."),
    energy: bool = typer.Option(False, "--energy", help="Add joules per frame and watts from the device's energy counter (NVML on NVIDIA GPUs, RAPL on CPUs)."),
    energy_seconds: float = typer.Option(2.0, "--energy-seconds", help="--energy: seconds of the engine alone per model."),
    precision: str = typer.Option("", "--precision", help="Also time the fused kernel at these reduced precisions in the same rounds, e.g. bf16,int8 (speed-up vs fp32 printed per model)."),
) -> None:
    """Time models upscaling to Full-HD against OpenCV, Pillow, torch bicubic and the torch forward."""
    from edgesr.bench import GPU_BURST, bench, expand_models
    from edgesr.results import check_table_path, write_table

    if pipeline == "video":
        _bench_video(expand_models(models or [], scale), threads, max(1, repeats), frames, backend, output)
        return

    try:
        out_h, out_w = (int(v) for v in size.lower().split("x"))
        if out_h < 1 or out_w < 1:
            raise ValueError
    except ValueError:
        raise fail(f"--size {size!r}: expected HxW, e.g. 1080x1920") from None
    if output is not None:
        check_table_path(output)
    ids = expand_models(models or [], scale)
    weights = None
    if official:
        from edgesr.official import official_files

        weights = dict(zip(ids, official_files(ids)))
    rows, info = bench(ids, backend=backend, device=check_device(device),
                       threads=threads, dtype=dtype, repeats=max(1, repeats), size=(out_h, out_w),
                       pipeline=pipeline, energy=energy, energy_s=energy_seconds, weights=weights,
                       precisions=[p.strip() for p in precision.split(",") if p.strip()])
    if output is not None:
        write_table(rows, output)
    for note in info["notes"]:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False, soft_wrap=True)
    dev = str(info["device"]).split(":")[0]
    user_call = pipeline != "luma"
    resident = any(f"ms_rgb_e2e_{dev}" in row for row in rows.values())
    extra = (("rgb e2e ms", "%bw") if resident else ()) + (("J/frame", "W") if energy else ())
    table = Table("id", "backend", "ms", "±", "fps", "GMAC", "GFLOP/s", "%peak", "xOpenCV", "xPillow",
                  *(("kernel ms", "xkernel") if user_call else ("xbicubic", "ref/it")), *extra, box=None)
    for model_id, row in rows.items():
        def ratio(name: str, r: dict = row) -> str:
            value = r.get(f"ratio_vs_{name}")
            return "" if value is None else f"{value:.2f}"
        last = ((f"{row[f'ms_kernel_{dev}']:.2f}" if f"ms_kernel_{dev}" in row else "", ratio("kernel"))
                if user_call else
                (ratio("torch_bicubic"),
                 f"{row['speedup_vs_torch_reference']:.1f}" if "speedup_vs_torch_reference" in row else ""))
        table.add_row(model_id, str(row["backend"]), f"{row[f'ms_{dev}']:.2f}", f"{row[f'spread_ms_{dev}']:.2f}",
                      f"{row[f'speed_{dev}']:.1f}", f"{row['macs'] / 1e9:.3f}", f"{row[f'gflops_{dev}']:.1f}",
                      f"{100 * row[f'peak_fraction_{dev}']:.0f}", ratio("opencv"), ratio("pillow"), *last,
                      *_extra_cells(row, dev, resident, energy))
    console.print(table)
    for model_id, row in rows.items():
        for key in (k for k in row if k.startswith("speedup_") and k != "speedup_vs_torch_reference"):
            name = key.removeprefix("speedup_")
            console.print(f"{model_id} {name}: {row[f'ms_engine_{name}_{dev}']:.2f} ms, {row[key]:.2f}x fp32",
                          highlight=False)
    if energy:
        why = next((r["energy_note"] for r in rows.values() if "energy_note" in r), None)
        console.print(f"energy: {escape(str(info.get('energy')))}" if why is None
                      else f"energy columns empty: {escape(why)}", highlight=False)
    what = {"luma": "uint8 luma in/out", "gray": "Upscaler.upscale(gray uint8)",
            "rgb": "Upscaler.upscale(RGB uint8), OpenCV/Pillow on the same array",
            "rgb16": "Upscaler.upscale(RGB uint16), OpenCV on the same array"}[pipeline]
    console.print(f"{info['machine']}; {info['libraries']}; {info['dtype']}; GEMM peak"
                  f" {info['gemm_peak_gflops']:.0f} GFLOP/s; output {out_h}x{out_w}, "
                  + (f"{what}; " if user_call or not (resident or dev == "cuda")
                     else "tensors resident on the device"
                     + (f", per frame in bursts of {GPU_BURST}; " if dev == "cuda" else "; "))
                  + "xNAME = time / NAME's time"
                  + (", ref/it = torch forward time / this time"
                     if dev == "cpu" or any("speedup_vs_torch_reference" in r for r in rows.values()) else "")
                  + (", rgb e2e = Upscaler.upscale(RGB uint8) with both transfers, %bw = the kernel's"
                     " input + output bytes per second / a device copy's" if resident else "")
                  + f" (medians of {repeats}, interleaved"
                  + (", each right after an untimed call of the same engine, as in a loop)" if user_call else ")")
                  + (f"; rows written to {output}" if output is not None else ""), highlight=False)


def _extra_cells(row: dict, dev: str, resident: bool, energy: bool) -> list[str]:
    """The GPU columns (end-to-end uint8 RGB call, % of copy bandwidth) and the energy columns."""
    def cell(key: str, fmt: str, factor: float = 1.0) -> str:
        return format(row[key] * factor, fmt) if key in row else ""
    cells = [cell(f"ms_rgb_e2e_{dev}", ".2f"), cell(f"bandwidth_fraction_{dev}", ".0f", 100.0)] if resident else []
    if energy:
        cells += [cell(f"joules_per_frame_{dev}", ".3g"), cell(f"watts_{dev}", ".1f")]
    return cells


def _bench_video(models: list[str], threads: Optional[int], repeats: int, frames: int, backend: str,
                 output: Optional[Path]) -> None:
    """`edgesr bench --pipeline video`: frames/s of the whole job against its stages alone."""
    from edgesr.bench import bench_video, environment
    from edgesr.results import check_table_path, write_table

    if output is not None:
        check_table_path(output)
    rows = {m: bench_video(m, frames=frames, threads=threads, repeats=min(repeats, 3), backend=backend)
            for m in models}
    if output is not None:
        write_table(rows, output)
    table = Table("id", "input", "output", "frames", "fps", "fps upscale only", "fps decode+encode only",
                  "x slowest stage", "ceiling fps", "x ceiling", "CPU ms/frame", box=None)
    for model_id, row in rows.items():
        cpu = "/".join(f"{row[f'cpu_ms_per_frame_{name}']:.0f}" for name in ("full", "kernel", "codecs"))
        table.add_row(model_id, row["input"], row["output"], str(row["frames"]), f"{row['fps_full']:.1f}",
                      f"{row['fps_kernel']:.1f}", f"{row['fps_decode_encode']:.1f}",
                      f"{row['ratio_vs_slowest_stage']:.2f}", f"{row['fps_shared_cores_ceiling']:.1f}",
                      f"{row['ratio_vs_ceiling']:.2f}", cpu)
    console.print(table)
    info = environment("cpu", next(iter(rows.values()))["threads"])
    console.print(f"{info['machine']}; {info['libraries']}; libx264 CRF 18 preset medium + AAC copy;"
                  " fps = frames / wall time of edgesr upscale clip.mp4 (decode, upscale, encode overlapped);"
                  " decode+encode only encodes the same upscaled pictures; ceiling = 1/(1/upscale + 1/codecs),"
                  " the rate when both stages share the cores; CPU ms/frame = full/upscale/codecs, all threads;"
                  " medians, interleaved" + (f"; rows written to {output}" if output else ""), highlight=False)


@command("export")
def export_command(
    model: str = typer.Argument(..., help="Model id, e.g. eSR-TM_s2_K7_C16."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write (.onnx or .pt)."),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx, torchscript, ncnn (-o NAME: NAME.param + NAME.bin), coreml (NAME.mlpackage) or tflite (LiteRT, fixed --size); the last three need the edgesr[ncnn|coreml|tflite] extras."),
    size: str = typer.Option("540x960", "--size", help="--format tflite: the input size HxW (LiteRT files have one)."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Official .model or edgesr .safetensors file."),
    official: bool = typer.Option(False, "--official", help=OFFICIAL_HELP),
    fp16: bool = typer.Option(False, "--fp16", help="Store and run the model in float16."),
    color: Optional[str] = typer.Option(None, "--color", help="RGB uint8 (N, H, W, 3) in and out with upscale's colour mode inside: ycbcr (model on luma, bicubic chroma) or rgb (model on each channel); default: the luma graph."),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare with the torch reference on random inputs."),
) -> None:
    """Export a model as ONNX (dynamic size; onnx.checker-validated) or TorchScript."""
    from edgesr import export, export_check
    from edgesr.models import load_model

    if format not in ("onnx", "torchscript", "ncnn", "coreml", "tflite"):
        raise EdgesrError(f"unknown export format {format!r}; choose onnx, torchscript, ncnn, coreml or tflite")
    if format in ("ncnn", "coreml", "tflite") and (fp16 or color):
        raise EdgesrError(f"--format {format} writes the float32 luma graph; --fp16 and --color are for onnx/torchscript")
    if official:
        from edgesr.official import official_files

        weights = official_files([model], weights)[0]
    module = load_model(model, weights)
    if format in ("ncnn", "coreml", "tflite"):
        console.print(_export_mobile(module, output, format, check, size), highlight=False, markup=False)
        return
    if format == "onnx":
        path = export.export_onnx(module, output, fp16=fp16, color=color)
        parity = export_check.onnx_parity if check else None
    else:
        path = export.export_torchscript(module, output, fp16=fp16, color=color)
        parity = export_check.torchscript_parity if check else None
    message = (f"wrote {path} ({format}, {f'RGB uint8 (color {color})' if color else 'luma'} graph"
               f"{', fp16' if fp16 else ''})")
    if parity is not None:
        error = parity(module, path, fp16=fp16, color=color)
        unit = " levels of 255" if color else ""
        message += f"; max |difference| vs torch reference {error:.3g}{unit}"
    console.print(message, highlight=False, markup=False)


def _export_mobile(module, output: Path, format: str, check: bool, size: str) -> str:  # noqa: ANN001
    """ncnn, Core ML or LiteRT export and its check; the line to print."""
    from edgesr import export_mobile

    if format == "tflite":
        try:
            h, w = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise EdgesrError(f"--size {size!r}: expected HxW, e.g. 540x960") from None
        path = export_mobile.export_tflite(module, output, (h, w))
        message = f"wrote {path} (LiteRT, float32, luma graph (1, 1, {h}, {w}))"
        if check:
            error = export_mobile.tflite_parity(module, path)
            message += f"; max |difference| vs torch reference {error:.3g} (ai-edge-litert)"
        return message

    if format == "ncnn":
        param, weights = export_mobile.export_ncnn(module, output)
        message = f"wrote {param} and {weights} (ncnn, luma graph in0 -> out0)"
        if check:
            error = export_mobile.ncnn_parity(module, param, weights)
            message += f"; max |difference| vs torch reference {error:.3g} (ncnn runtime)"
        return message
    path = export_mobile.export_coreml(module, output)
    message = f"wrote {path} (Core ML ML program, float32, luma graph lr -> hr)"
    if check:
        message += f"; {export_mobile.coreml_check(module, path)}"
    return message


@command("train")
def train_command(
    model: str = typer.Argument(..., help="Model id to train, e.g. eSR-TM_s2_K7_C16."),
    data: str = typer.Option("T91,General100", "--data", help="Comma-separated training sets (names or folders)."),
    val: str = typer.Option("Set5", "--val", help="Comma-separated validation sets, checked every --val-every steps."),
    steps: Optional[int] = typer.Option(None, "--steps", "--iters", help="Optimiser steps (default: the recipe's: 10000 one-layer, 30000 eSR-CNN and ESPCN, 20000 FSRCNN)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Pixels (one-layer models, default 8192) or patches (default 64 eSR-CNN and ESPCN, 32 FSRCNN) per step."),
    patch_size: Optional[int] = typer.Option(None, "--patch-size", help="LR patch side for patch-trained families (default 32 eSR-CNN and ESPCN, 24 FSRCNN)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate, cosine decay (default: the recipe's)."),
    init: str = typer.Option("auto", "--init", help="Starting weights: auto, paper, bicubic (ESPCN, eSR-CNN) or a weight file of the same id (fine-tuning, a second cycle)."),
    loss: str = typer.Option("l2", "--loss", help="l2 or l1."),
    whiten: bool = typer.Option(True, "--whiten/--no-whiten", help="Train every convolution in whitened coordinates of its input."),
    pre_scale: Optional[str] = typer.Option(None, "--pre-scale", help="Resize training images first: one factor (e.g. 0.5 for JPEG sources) or several, comma-separated, each a copy of the data (e.g. 1,0.9,0.8,0.7,0.6)."),
    seed: int = typer.Option(0, "--seed"),
    val_every: int = typer.Option(1000, "--val-every", help="Steps between validations and checkpoints."),
    out: Path = typer.Option(Path("."), "--out", "-o", help="Output folder for ID.safetensors, ID.json and the checkpoint."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run checkpointed in --out."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    amp: bool = typer.Option(False, "--amp/--no-amp", help="CUDA, patch-trained models (ESPCN, eSR-CNN, FSRCNN): fp16 autocast with gradient scaling (measured 0.3 dB worse; default fp32)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads."),
) -> None:
    """Train a model id on luma patches with the measured recipe; resumable."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from edgesr.train import TrainConfig, train

    split = lambda text: [item.strip() for item in text.split(",") if item.strip()]  # noqa: E731
    config = TrainConfig.from_recipe(model, steps=steps, batch_size=batch_size, patch_size=patch_size, lr=lr,
                                     data=split(data), val=split(val), loss=loss, whiten=whiten, init=init,
                                     pre_scale=parse_factors(pre_scale), seed=seed, val_every=val_every,
                                     device=check_device(device), amp=amp, threads=threads)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.3g}  val {task.fields[val]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(config.model_id, total=config.steps, loss=float("nan"), val="-")

        def report(event: ProgressEvent) -> None:
            if event.kind == "validated":
                bar.update(task, val=f"{event.values['val_psnr']:.3f} dB")
            elif event.kind == "step":
                bar.update(task, completed=event.done, loss=event.values["loss"])

        result = train(config, out=out, resume=resume, progress=report)
    record = result.record
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in record["val"].items())
    console.print(f"trained {record['id']} for {record['steps']} steps in {record['train_seconds']:.0f} s"
                  f" ({record['threads']} threads): {metrics}", highlight=False)
    console.print(f"wrote {result.weights} and {result.sidecar}", highlight=False, markup=False)
    for message in result.skipped:
        print_error(f"{message} (skipped)")
    if result.skipped:
        raise typer.Exit(code=1)


@command("search")
def search_command(
    ids: Optional[list[str]] = typer.Argument(None, help="Model ids (added to the other selections)."),
    grid: Optional[str] = typer.Option(None, "--grid", help="paper: the paper's 1185 ids (the filters narrow it)."),
    family: Optional[str] = typer.Option(None, "--family", "-f", help="Families, comma-separated (eSR-MAX,eSR-TM,...)."),
    scale: Optional[str] = typer.Option(None, "--scale", "-s", help="Scales, e.g. 2 or 2,3 (default 2,3,4)."),
    k: Optional[str] = typer.Option(None, "--K", help="Filter sizes, e.g. 3,5,7."),
    c: Optional[str] = typer.Option(None, "--C", help="Channels, e.g. 1-16 or 1,2,4,8,16."),
    d: Optional[str] = typer.Option(None, "--D", help="First-layer widths (eSR-CNN, ESPCN, FSRCNN)."),
    s_width: Optional[str] = typer.Option(None, "--S", help="Second-layer widths (eSR-CNN, ESPCN, FSRCNN)."),
    m: Optional[str] = typer.Option(None, "--M", help="FSRCNN mapping depths."),
    ids_file: Optional[Path] = typer.Option(None, "--ids", help="File of model ids, one per line (# comments)."),
    store: Path = typer.Option(Path("search.sqlite"), "--store", help="Results store (SQLite); reruns resume it."),
    datasets: str = typer.Option("Set5,Set14", "--datasets", "-d", help="Evaluation sets (names or folders); the first also validates training."),
    train_data: str = typer.Option("T91,General100", "--train-data", help="Training sets (names or folders)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override the recipe's training steps (quick runs)."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Folder of <id>.safetensors/<id>.model to evaluate instead of training."),
    official: bool = typer.Option(False, "--official", help="Evaluate the paper's official weights instead of training (fetch them first: `edgesr weights fetch official --all`)."),
    bench_size: str = typer.Option("1080x1920", "--bench-size", help="Output size HxW of the speed measurement."),
    bench_repeats: int = typer.Option(5, "--bench-repeats", help="Timed runs per model (median)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto (training and speed)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads for the speed measurement."),
    train_threads: Optional[int] = typer.Option(None, "--train-threads", help="Torch threads per training task (default: all cores, or cores / --workers)."),
    workers: int = typer.Option(1, "--workers", help="Parallel train+eval tasks (process pool, or Ray CPUs)."),
    executor: str = typer.Option("local", "--executor", help="local or ray."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray instance)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run again the ids whose last attempt failed."),
    rebench: bool = typer.Option(False, "--rebench", help="Measure the finished ids' speed again (on a quiet machine); quality is kept."),
    bicubic: bool = typer.Option(True, "--bicubic/--no-bicubic", help="Add Bicubic_s<scale> rows (the plots' reference point)."),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="Training checkpoints and weights (default: <store>.work beside the store)."),
    export: Optional[Path] = typer.Option(None, "--export", help="Then write the store's rows in the paper's format (.json or .csv)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list the selected ids."),
) -> None:
    """Exhaustive search: train (or load), evaluate and bench every selected id into a resumable store.

    With only --store and --export, writes the store's table and exits.
    """
    from edgesr.search import SearchSettings, export_store, run_search, select_ids, with_bicubic
    from edgesr.cli_views import SearchProgress
    from edgesr.search.grid import parse_values
    from edgesr.search.settings import default_train_threads

    split = lambda text: [item.strip() for item in text.split(",") if item.strip()]  # noqa: E731
    try:
        out_h, out_w = (int(v) for v in bench_size.lower().split("x"))
    except ValueError:
        raise fail(f"--bench-size {bench_size!r}: expected HxW, e.g. 1080x1920") from None
    fields = {name: parse_values(text) for name, text in
              {"K": k, "C": c, "D": d, "S": s_width, "M": m}.items() if text is not None}
    selected = select_ids(grid, split(family) if family else None, parse_values(scale) if scale else None,
                          fields, ids or [], ids_file)
    if not selected and export is None:
        raise EdgesrError("no models selected: use --grid paper, filters (--family, --scale, --K, --C, ...),"
                          " --ids FILE or ids")
    if selected and bicubic:
        selected = with_bicubic(selected)
    if official and selected and not dry_run:
        from edgesr.official import official_dir, official_files

        official_files(selected, weights)  # every file there and intact before the run starts
        weights = official_dir()
    if dry_run:
        console.print("\n".join(selected), highlight=False)
        console.print(f"{len(selected)} ids", highlight=False)
        return
    if selected:
        parallel = workers > 1 or executor == "ray"
        settings = SearchSettings(split(datasets), split(train_data), steps=steps,
                                  weights=str(weights) if weights else None, bench_size=(out_h, out_w),
                                  bench_repeats=bench_repeats, device=check_device(device), threads=threads,
                                  train_threads=train_threads or (default_train_threads(workers) if parallel
                                                                  else None))
        with SearchProgress(err_console) as progress:
            report = run_search(selected, store, settings, executor=executor, workers=workers, address=address,
                                retry_failed=retry_failed, work_dir=work_dir, report=progress,
                                rebench=rebench)
        console.print(f"{len(report.done)} done, {len(report.failed)} failed, {report.skipped_done} already"
                      f" done, {report.skipped_failed} failed before (--retry-failed runs them) in"
                      f" {report.seconds:.1f} s; store {store}", highlight=False, markup=False)
    if export is not None:
        path, rows = export_store(store, export)
        console.print(f"wrote {rows} rows to {path}", highlight=False, markup=False)
    if selected and report.failed:
        for model_id, message in report.failed.items():
            print_error(f"{model_id}: {message}" if not message.startswith(model_id) else message)
        raise typer.Exit(code=1)


@command("pareto")
def pareto_command(
    inputs: list[Path] = typer.Argument(..., help="Search stores (SQLite) and/or tables in the paper's format (.json/.csv)."),
    x: str = typer.Option("speed_cpu", "--x", help="Speed column; comma-separated: each input uses the first it has (e.g. speed_cpu,speed_MaxQ)."),
    y: str = typer.Option("psnr_Set5", "--y", help="Quality column(s), as --x."),
    scale: Optional[str] = typer.Option(None, "--scale", "-s", help="Only these scales, e.g. 2 or 2,3."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for pareto_x<s>.png, pareto.html and fronts.json."),
) -> None:
    """Pareto fronts of quality vs speed per scale; plots like the paper's Figure 1 and an interactive page."""
    import json

    from edgesr.atomic import write_text_atomic
    from edgesr.cli_views import front_tables
    from edgesr.search.grid import parse_values
    from edgesr.search.page import write_html
    from edgesr.search.pareto import analyse, fronts_table, load_sources

    split = lambda text: [item.strip() for item in text.split(",") if item.strip()]  # noqa: E731
    analysis = analyse(load_sources(inputs), split(x), split(y), parse_values(scale) if scale else None)
    if not analysis.panels:
        raise EdgesrError("no rows with both axes to plot")
    written = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        try:
            from edgesr.search.plots import write_pngs

            written += write_pngs(analysis, out)
        except EdgesrError as error:  # matplotlib missing: the page and data still get written
            analysis.notes.append(f"no PNG: {error}")
        written.append(write_html(analysis, out / "pareto.html"))
        write_text_atomic(out / "fronts.json", json.dumps(fronts_table(analysis), indent=1) + "\n")
        written.append(out / "fronts.json")
    for table in front_tables(analysis):
        console.print(table)
    for note in analysis.notes:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False, soft_wrap=True)
    if written:
        console.print("wrote " + ", ".join(str(p) for p in written), highlight=False, markup=False)


@command("explain")
def explain_command(
    model: str = typer.Argument(..., help="Model id (eSR-MAX/TM/TR: filters and maps; eSR-CNN: maps)."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Official .model or edgesr .safetensors file."),
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="Image whose template maps to show, as the LR input (centre 384x384 crop; default: a Siemens star)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (PNG files, orientation.csv, index.html)."),
) -> None:
    """Show what a model learned: filters per channel and phase, spectra, directions, template maps."""
    from edgesr.explain_views import explain

    report = explain(model, out, weights=weights, image=image)
    console.print(f"wrote {len(report.files)} files and {report.index}", highlight=False, markup=False)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: context managers remove temporary files on the way out."""
    raise Terminated


def main() -> None:
    """Console-script entry point: one line per failure, exit 1; SIGTERM exits 143, cleanly."""
    if sys.platform != "win32":
        signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except EdgesrError as error:  # errors raised outside a command's own handling
        print_error(str(error))
        sys.exit(1)
    except SystemExit as exit_:
        if isinstance(exit_.__context__, Terminated) or isinstance(
                getattr(exit_.__context__, "__context__", None), Terminated):
            sys.exit(143)  # click turned the SIGTERM into "Aborted!" and exit 1
        raise
    except Terminated:
        sys.exit(143)
    except Exception as error:  # noqa: BLE001 - the last line of defence: a bug, shown as one line
        log.debug("internal error", exc_info=error)
        print_error(f"internal error: {describe(error)} (please report it; --debug shows the traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
