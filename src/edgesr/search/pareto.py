"""Pareto fronts of quality against speed, per scale, for one or more results tables.

A point is on the front when no other point is at least as good on both axes and better on
one. Which way is better follows the column: speeds, PSNR and SSIM go up; times (``ms_*``),
``parameters``, ``macs`` and LPIPS go down.

>>> pareto_front([("a", 10, 30.0), ("b", 20, 29.0), ("c", 5, 29.5), ("d", 20, 28.0)])
['b', 'a']
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgesr.errors import EdgesrError
from edgesr.models import FAMILIES, ModelSpec

Table = dict[str, dict[str, float]]

#: Column prefixes where smaller is better.
LOWER_IS_BETTER = ("ms_", "spread_ms_", "parameters", "macs", "lpips_")


def direction(column: str) -> str:
    """"max" when larger values of ``column`` are better, else "min"."""
    return "min" if column.startswith(LOWER_IS_BETTER) else "max"


def pareto_front(points: Sequence[tuple[str, float, float]], x_better: str = "max",
                 y_better: str = "max") -> list[str]:
    """Ids of the non-dominated points, from the best x to the best y.

    Args:
        points: (id, x, y) triples; equal points keep the first listed.
        x_better, y_better: "max" or "min" per axis.
    """
    sx = 1.0 if x_better == "max" else -1.0
    sy = 1.0 if y_better == "max" else -1.0
    order = sorted(range(len(points)), key=lambda i: (-sx * points[i][1], -sy * points[i][2], i))
    front, best = [], -math.inf
    for i in order:
        y = sy * points[i][2]
        if y > best:
            front.append(points[i][0])
            best = y
    return front


def load_results(path: str | os.PathLike) -> Table:
    """A results table from a search store (SQLite) or a ``.json``/``.csv`` in the paper's format."""
    from edgesr.results import read_table
    from edgesr.search.store import ResultsStore, is_sqlite_file

    path = Path(path)
    if not path.is_file():
        raise EdgesrError(f"{path}: no such results file")
    if is_sqlite_file(path):
        with ResultsStore(path, readonly=True) as store:
            return store.table()
    if path.suffix.lower() not in (".json", ".csv"):
        raise EdgesrError(f"{path}: expected a search store (SQLite) or a .json/.csv results table")
    return read_table(path)


@dataclass
class Point:
    """One model in a panel: its id, family, axis values and full row."""

    id: str
    family: str
    x: float
    y: float
    row: dict


@dataclass
class Panel:
    """One (source, scale): its points, the front (ids, best x first) and the bicubic point."""

    source: str
    scale: int
    x: str
    y: str
    points: list[Point]
    front: list[str]
    bicubic: Point | None
    skipped: int = 0

    def front_points(self) -> list[Point]:
        by_id = {p.id: p for p in self.points}
        return [by_id[i] for i in self.front]


@dataclass
class Source:
    """A named results table (the name labels its panels)."""

    name: str
    table: Table
    path: Path | None = None


@dataclass
class Analysis:
    """Every panel of a Pareto analysis and notes for the user."""

    panels: list[Panel] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_sources(paths: Sequence[str | os.PathLike]) -> list[Source]:
    """Read each path; names are the file stems, made unique with their folder when they clash."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise EdgesrError("name at least one results store or table")
    stems = [p.stem for p in paths]
    names = [f"{p.parent.name}/{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]
    return [Source(name, load_results(p), p) for name, p in zip(names, paths)]


def pick_column(table: Table, candidates: Sequence[str], name: str, axis: str) -> str:
    """The first of ``candidates`` that the table has; else an error listing what it has."""
    present = {c for row in table.values() for c in row}
    for column in candidates:
        if column in present:
            return column
    hint = sorted(c for c in present if c.startswith(("speed_", "psnr_", "ssim_"))) or sorted(present)
    raise EdgesrError(f"{name}: has no {axis} column {' or '.join(candidates)}; it has {', '.join(hint)}")


def analyse(sources: Sequence[Source], x: Sequence[str] = ("speed_cpu",), y: Sequence[str] = ("psnr_Set5",),
            scales: Sequence[int] | None = None) -> Analysis:
    """Fronts per source and scale; each source uses the first ``x``/``y`` column it has.

    Ids that are not model ids, or whose values are missing, non-finite, or not positive on x
    (the x axis is logarithmic), are left out and counted in ``Panel.skipped``.
    """
    analysis = Analysis()
    for source in sources:
        if not source.table:
            analysis.notes.append(f"{source.name}: holds no rows")
            continue
        x_column = pick_column(source.table, x, source.name, "x")
        y_column = pick_column(source.table, y, source.name, "y")
        by_scale: dict[int, list[Point]] = {}
        skipped: dict[int, int] = {}
        unparsed = 0
        for model_id, row in source.table.items():
            try:
                spec = ModelSpec.parse(model_id)
            except EdgesrError:
                unparsed += 1
                continue
            if scales and spec.scale not in scales:
                continue
            xv, yv = row.get(x_column), row.get(y_column)
            if not _usable(xv, positive=True) or not _usable(yv):
                skipped[spec.scale] = skipped.get(spec.scale, 0) + 1
                continue
            by_scale.setdefault(spec.scale, []).append(Point(spec.id, spec.family, float(xv), float(yv), row))
        if unparsed:
            analysis.notes.append(f"{source.name}: {unparsed} rows are not model ids and were left out")
        for scale in sorted(set(by_scale) | set(skipped)):
            points = by_scale.get(scale, [])
            if not points:
                analysis.notes.append(f"{source.name} x{scale}: no row has both {x_column} and {y_column}")
                continue
            front = pareto_front([(p.id, p.x, p.y) for p in points], direction(x_column), direction(y_column))
            bicubic = next((p for p in points if not FAMILIES[p.family].learned), None)  # the reference
            if bicubic is None:
                analysis.notes.append(f"{source.name} x{scale}: no Bicubic_s{scale} row, so no reference point")
            analysis.panels.append(Panel(source.name, scale, x_column, y_column, points, front, bicubic,
                                         skipped.get(scale, 0)))
    return analysis


def _usable(value: object, positive: bool = False) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return value > 0 if positive else True


def fronts_table(analysis: Analysis) -> dict:
    """``{source: {"x2": [{"id", x, y}, ...]}}``: the fronts as data (for JSON output)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for panel in analysis.panels:
        out.setdefault(panel.source, {})[f"x{panel.scale}"] = [
            {"id": p.id, panel.x: p.x, panel.y: p.y} for p in panel.front_points()]
    return out
