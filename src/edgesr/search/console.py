"""Rich output for the search commands: a progress display fed by runner events, front tables."""

from __future__ import annotations

from rich.console import Console
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
