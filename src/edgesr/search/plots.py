"""PNG plots of Pareto panels, like the paper's Figure 1 (needs the ``plots`` extra: matplotlib).

One figure per scale, one panel per results source side by side: quality against speed on a
logarithmic x axis, a marker per family, the front drawn as a staircase over highlighted
points, and bicubic as the reference (a star with dashed lines: points up and to the right of
both beat bicubic on both axes).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from edgesr.atomic import atomic_path
from edgesr.errors import EdgesrError
from edgesr.models import FAMILIES
from edgesr.search.pareto import Analysis, Panel, direction

#: Marker and colour per family (`Family.style`; the same in the PNG and the HTML page), the
#: learned families first and the reference (bicubic) last, as in the legend.
FAMILY_STYLE: dict[str, tuple[str, str]] = {
    name: family.style for name, family in sorted(FAMILIES.items(), key=lambda item: not item[1].learned)}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise EdgesrError("PNG plots need matplotlib: pip install 'edgesr[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def axis_label(column: str) -> str:
    """``speed_cpu`` -> "speed_cpu (fps, log)" and the like."""
    if column.startswith("speed_"):
        return f"{column} (fps, log scale)"
    if column.startswith("ms_"):
        return f"{column} (ms, log scale)"
    if column.startswith("psnr_"):
        return f"{column} (dB)"
    return column


def staircase(panel: Panel) -> tuple[list[float], list[float]]:
    """The front as a step line bounding the region its points dominate (attainable corners only)."""
    points = sorted(panel.front_points(), key=lambda p: p.x)
    xs: list[float] = []
    ys: list[float] = []
    for a, b in itertools.pairwise(points):
        faster_is_right = direction(panel.x) == "max"
        xs += [a.x, a.x] if faster_is_right else [a.x, b.x]
        ys += [a.y, b.y] if faster_is_right else [a.y, a.y]
    if points:
        xs.append(points[-1].x)
        ys.append(points[-1].y)
    return xs, ys


def plot_scale(panels: list[Panel], path: str | os.PathLike, title: str | None = None) -> Path:
    """One PNG: the panels (same scale, different sources) side by side."""
    plt = _pyplot()
    path = Path(path)
    figure, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 5.0), squeeze=False, sharey=True)
    for ax, panel in zip(axes[0], panels):
        _draw(ax, panel)
    axes[0][0].set_ylabel(axis_label(panels[0].y))
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), frameon=False)
    figure.suptitle(title or f"quality vs speed, x{panels[0].scale}")
    figure.tight_layout(rect=(0, 0.08, 1, 0.95))
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110)
    plt.close(figure)
    return path


def _draw(ax, panel: Panel) -> None:
    on_front = set(panel.front)
    for family, (marker, colour) in FAMILY_STYLE.items():
        if not FAMILIES[family].learned:  # the reference point, drawn below
            continue
        points = [p for p in panel.points if p.family == family]
        if not points:
            continue
        ax.scatter([p.x for p in points], [p.y for p in points], marker=marker, s=22, color=colour,
                   alpha=0.45, linewidths=0, label=family)
        front = [p for p in points if p.id in on_front]
        if front:
            ax.scatter([p.x for p in front], [p.y for p in front], marker=marker, s=60, color=colour,
                       edgecolors="black", linewidths=1.0, zorder=4)
    xs, ys = staircase(panel)
    ax.plot(xs, ys, color="black", linewidth=1.0, zorder=3, label="Pareto front")
    if panel.bicubic is not None:
        b = panel.bicubic
        ax.axhline(b.y, color="black", linestyle="--", linewidth=0.8)
        ax.axvline(b.x, color="black", linestyle="--", linewidth=0.8)
        ax.scatter([b.x], [b.y], marker="*", s=200, color="gold", edgecolors="black", zorder=5, label=b.family)
    ax.set_xscale("log")
    ax.set_xlabel(axis_label(panel.x))
    ax.set_title(f"{panel.source}, x{panel.scale} ({len(panel.points)} models, {len(panel.front)} on the front)",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.25)


def write_pngs(analysis: Analysis, out: str | os.PathLike) -> list[Path]:
    """``pareto_x<scale>.png`` per scale in ``out`` (created)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for scale in sorted({p.scale for p in analysis.panels}):
        panels = [p for p in analysis.panels if p.scale == scale]
        written.append(plot_scale(panels, out / f"pareto_x{scale}.png"))
    return written
