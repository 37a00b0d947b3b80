"""The command line's Rich views of library events (`edgesr.progress`) and results: with
`edgesr.cli`, the only code that talks to the terminal.

* `UpscaleView`: `upscale_files` events as a bar over the files, one line per file written and a
  bar over each video's frames.
* `SearchProgress`: `run_search` events as two bars (ids finished, the current id's steps).
* `front_tables`: the Pareto fronts of an analysis as tables.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from edgesr.progress import Progress as ProgressEvent
from edgesr.search.pareto import Analysis


class UpscaleView:
    """`upscale_files` events on the terminal: a bar over the files, one line per file written
    (``verbose``: with its read and write times) and a bar over each video's frames."""

    def __init__(self, console: Console, verbose: bool) -> None:
        self.verbose, self.images = verbose, 0
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=console, transient=True)
        self.files = self.video = None

    def __enter__(self) -> UpscaleView:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event: ProgressEvent) -> None:
        if event.task == "video" and event.kind == "start":
            self.video = self.bar.add_task(escape(event.item), total=event.total)
        elif event.task == "video" and event.kind == "advance" and self.video is not None:
            self.bar.update(self.video, advance=event.units,
                            description=f"{escape(event.item)} {event.values['fps']:.1f} fps")
        elif event.kind == "start":
            self.files = self.bar.add_task("upscaling", total=event.total)
        elif event.kind == "finished":
            self._finished(event)

    def _finished(self, event: ProgressEvent) -> None:
        done = event.values
        if self.video is not None and ("frames" in done or "error" in done):  # the video's bar is done
            self.bar.remove_task(self.video)
            self.video = None
        if "frames" in done:  # a video
            line = (f"{done['source']} -> {done['target']}  {done['frames']} frames {done['out_size'][0]}x"
                    f"{done['out_size'][1]} at {done['fps']:g} fps, {done['codec']}, audio {done['audio']},"
                    f" {done['frames'] / max(done['upscale'], 1e-9):.1f} frames/s")
        elif "error" not in done:
            self.images += 1
            (w, h), (out_w, out_h) = done["in_size"], done["out_size"]
            line = f"{done['source']} -> {done['target']}  {w}x{h} -> {out_w}x{out_h}  {done['upscale'] * 1000:.0f} ms"
            if self.verbose:
                line += f"  (read {done['read'] * 1000:.0f} ms, write {done['write'] * 1000:.0f} ms)"
        else:
            self.images += 1
            line = None
        if line is not None:
            self.bar.console.print(line, highlight=False, markup=False)
        if self.files is not None:
            self.bar.update(self.files, advance=event.units, description=escape(event.item))


class SearchProgress:
    """Turns `edgesr.search.runner` events into two bars: ids finished, and the current id's
    training steps (sequential runs report those)."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, transient=True)
        self.overall = None
        self.current = None
        self.failed = 0

    def __enter__(self) -> SearchProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "start":
            self.overall = self.progress.add_task("search", total=event.total, note="")
        elif event.kind == "stage":
            self._stage(event)
        elif event.kind == "finished":
            if event.values["status"] == "done":
                row = event.values.get("row", {})
                metrics = "  ".join(f"{k} {v:.4f}" if k.startswith("psnr_") else f"{k} {v:.1f}"
                                    for k, v in row.items() if k.startswith(("psnr_", "speed_")))
                self.progress.console.print(f"[green]done[/green] {event.item}  {metrics}", highlight=False)
            if event.values["status"] == "failed":
                self.failed += 1
                self.progress.console.print(f"[red]failed[/red] {event.item}: {event.values.get('error', '')}",
                                            highlight=False, soft_wrap=True)
            self.progress.update(self.overall, advance=1, note=f"{self.failed} failed" if self.failed else "")

    def _stage(self, event: ProgressEvent) -> None:
        stage = event.values["stage"]
        if stage == "train":
            if self.current is None:
                self.current = self.progress.add_task(event.item, total=event.total, note="train")
            self.progress.update(self.current, description=event.item, completed=event.done,
                                 total=event.total, note="train", visible=True)
        elif self.current is not None:
            self.progress.update(self.current, description=event.item, note=stage)
        else:
            self.current = self.progress.add_task(event.item, total=None, note=stage)


def front_tables(analysis: Analysis) -> list[Table]:
    """One Rich table per panel listing its Pareto front (best x first)."""
    tables = []
    for panel in analysis.panels:
        table = Table("id", panel.x, panel.y, "parameters", box=None,
                      title=f"{panel.source} x{panel.scale}: {len(panel.front)} of {len(panel.points)} on the front"
                            + (f" ({panel.skipped} without values)" if panel.skipped else ""),
                      title_justify="left")
        for p in panel.front_points():
            params = p.row.get("parameters")
            table.add_row(p.id, f"{p.x:.4g}", f"{p.y:.4f}", "" if params is None else str(int(params)))
        tables.append(table)
    return tables
