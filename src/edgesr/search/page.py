"""A self-contained interactive HTML page of Pareto panels: inline SVG and a few lines of JS.

No library and no network: the page opens from disk anywhere. Hovering a point shows its id and
every metric of its row; clicking a family in the legend hides or shows it. Each panel also
lists its front as a table (readable without JS).
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

from edgesr.atomic import write_text_atomic
from edgesr.models import FAMILIES
from edgesr.search.pareto import Analysis, Panel, direction
from edgesr.search.plots import FAMILY_STYLE, axis_label, staircase

WIDTH, HEIGHT = 620, 420
MARGIN = {"left": 64, "right": 16, "top": 28, "bottom": 48}


def log_ticks(low: float, high: float) -> list[float]:
    """Tick values for a log axis over [low, high]: decades, or 1-2-5 steps for short ranges."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    steps = (1,) if last - first > 3 else (1, 2, 5)
    return [m * 10.0**e for e in range(first, last + 1) for m in steps if low <= m * 10.0**e <= high]


def linear_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """About ``count`` round tick values over [low, high]."""
    span = (high - low) or 1.0
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    start = math.ceil(low / step) * step
    return [start + k * step for k in range(int((high - start) / step) + 1)]


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e4 or abs(value) < 1e-2 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def _marker(family: str, x: float, y: float, size: float) -> str:
    """SVG shape for a family's marker centred at (x, y)."""
    shape, _ = FAMILY_STYLE.get(family, ("o", "#777777"))
    r = size
    if shape == "o":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}"'
    if shape == "s":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}"'
    corners = {
        "v": [(0, r), (-r, -r), (r, -r)],
        "^": [(0, -r), (-r, r), (r, r)],
        "D": [(0, -r * 1.2), (r, 0), (0, r * 1.2), (-r, 0)],
        "P": [(-r / 3, -r), (r / 3, -r), (r / 3, -r / 3), (r, -r / 3), (r, r / 3), (r / 3, r / 3),
              (r / 3, r), (-r / 3, r), (-r / 3, r / 3), (-r, r / 3), (-r, -r / 3), (-r / 3, -r / 3)],
        "*": [(r * 2 * math.cos(a) if k % 2 == 0 else r * 0.8 * math.cos(a),
               r * 2 * math.sin(a) if k % 2 == 0 else r * 0.8 * math.sin(a))
              for k, a in enumerate(-math.pi / 2 + i * math.pi / 5 for i in range(10))],
    }[shape]
    points = " ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in corners)
    return f'<polygon points="{points}"'


def panel_svg(panel: Panel, first_point: int) -> str:
    """One panel as inline SVG; points carry ``data-i`` (offset by ``first_point``) into the
    page's POINTS array."""
    left, top = MARGIN["left"], MARGIN["top"]
    plot_w = WIDTH - left - MARGIN["right"]
    plot_h = HEIGHT - top - MARGIN["bottom"]
    xs = [p.x for p in panel.points]
    ys = [p.y for p in panel.points]
    x_low, x_high = min(xs) / 1.3, max(xs) * 1.3
    y_pad = (max(ys) - min(ys)) * 0.06 or 0.5
    y_low, y_high = min(ys) - y_pad, max(ys) + y_pad

    def sx(v: float) -> float:
        return left + plot_w * (math.log10(v) - math.log10(x_low)) / (math.log10(x_high) - math.log10(x_low))

    def sy(v: float) -> float:
        return top + plot_h * (1.0 - (v - y_low) / (y_high - y_low))

    parts = [(f'<svg class="panel" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"'
              f' role="img" aria-label="{html.escape(panel.source)} x{panel.scale}">'),
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="white" stroke="#999"/>']
    for v in log_ticks(x_low, x_high):
        parts.append(f'<line x1="{sx(v):.1f}" x2="{sx(v):.1f}" y1="{top}" y2="{top + plot_h}" class="grid"/>'
                     f'<text x="{sx(v):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_format(v)}</text>')
    for v in linear_ticks(y_low, y_high):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{_format(round(v, 6))}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
                 f'{html.escape(axis_label(panel.x))}</text>'
                 f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">'
                 f'{html.escape(axis_label(panel.y))}</text>')
    if panel.bicubic is not None:
        b = panel.bicubic
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(b.y):.1f}" y2="{sy(b.y):.1f}" class="ref"/>'
                     f'<line x1="{sx(b.x):.1f}" x2="{sx(b.x):.1f}" y1="{top}" y2="{top + plot_h}" class="ref"/>')
    line_x, line_y = staircase(panel)
    if line_x:
        coords = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(line_x, line_y))
        parts.append(f'<polyline points="{coords}" class="front"/>')
    on_front = set(panel.front)
    ordered = sorted(enumerate(panel.points), key=lambda item: item[1].id in on_front)  # front on top
    for k, p in ordered:
        reference = not FAMILIES[p.family].learned
        colour = "gold" if reference else FAMILY_STYLE.get(p.family, ("o", "#777"))[1]
        front = p.id in on_front
        style = (f' fill="{colour}" fill-opacity="{1.0 if front else 0.5}"'
                 f' stroke="{"black" if front or reference else "none"}" stroke-width="1.2"')
        parts.append(f'{_marker(p.family, sx(p.x), sy(p.y), 5.5 if front else 3.8)}{style}'
                     f' class="pt fam-{html.escape(p.family)}" data-i="{first_point + k}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _front_table(panel: Panel) -> str:
    columns = [panel.x, panel.y, "parameters"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["id", *columns])
    rows = "".join("<tr><td>" + html.escape(p.id) + "</td>"
                   + "".join(f"<td>{_format(p.row.get(c, ''))}</td>" for c in columns) + "</tr>"
                   for p in panel.front_points())
    return f"<details><summary>front: {len(panel.front)} models</summary><table>{head and '<tr>' + head + '</tr>'}{rows}</table></details>"


def _clean(row: dict) -> dict:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in row.items()}


_SCRIPT = """
const tip = document.getElementById('tip');
document.querySelectorAll('.pt').forEach(el => {
  el.addEventListener('mouseenter', ev => {
    const p = POINTS[+el.dataset.i];
    const rows = Object.entries(p.row).map(([k, v]) =>
      `<tr><td>${k}</td><td>${typeof v === 'number' ? +v.toPrecision(6) : v}</td></tr>`).join('');
    tip.innerHTML = `<b>${p.id}</b>${p.front ? ' (front)' : ''}<br><i>${p.source}</i><table>${rows}</table>`;
    tip.style.display = 'block';
  });
  el.addEventListener('mousemove', ev => {
    tip.style.left = (ev.pageX + 14) + 'px'; tip.style.top = (ev.pageY + 10) + 'px';
  });
  el.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
});
document.querySelectorAll('.legend span').forEach(el => {
  el.addEventListener('click', () => {
    el.classList.toggle('off');
    document.querySelectorAll('.fam-' + el.dataset.family)
      .forEach(p => p.style.display = el.classList.contains('off') ? 'none' : '');
  });
});
"""

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
svg text { font-size: 11px; fill: #333; }
.grid { stroke: #eee; } .ref { stroke: #000; stroke-dasharray: 5 4; stroke-width: 0.8; }
.front { fill: none; stroke: #000; stroke-width: 1.2; }
.pt { cursor: pointer; } .pt:hover { stroke: #000; stroke-width: 2.5; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; } figure { margin: 0; }
#tip { position: absolute; display: none; background: #fff; border: 1px solid #888; padding: 6px;
       font-size: 12px; box-shadow: 2px 2px 6px #aaa; pointer-events: none; }
#tip table, details table { border-collapse: collapse; } td, th { padding: 0 8px; text-align: left; }
.legend span { cursor: pointer; margin-right: 1.2em; user-select: none; } .legend span.off { opacity: 0.3; }
"""


def write_html(analysis: Analysis, path: str | os.PathLike, title: str = "edgesr: quality vs speed") -> Path:
    """Write the page (atomically); returns its path."""
    path = Path(path)
    points: list[dict] = []
    sections = []
    for scale in sorted({p.scale for p in analysis.panels}):
        figures = []
        for panel in (p for p in analysis.panels if p.scale == scale):
            first = len(points)
            on_front = set(panel.front)
            points += [{"id": p.id, "source": panel.source, "front": p.id in on_front, "row": _clean(p.row)}
                       for p in panel.points]
            caption = (f"{html.escape(panel.source)}: {len(panel.points)} models, {len(panel.front)} on the front"
                       f" ({direction(panel.x)} {html.escape(panel.x)}, {direction(panel.y)} {html.escape(panel.y)})")
            figures.append(f"<figure>{panel_svg(panel, first)}<figcaption>{caption}</figcaption>"
                           f"{_front_table(panel)}</figure>")
        sections.append(f"<h2>x{scale}</h2><div class='row'>{''.join(figures)}</div>")
    families = sorted({p.family for panel in analysis.panels for p in panel.points},
                      key=lambda f: list(FAMILY_STYLE).index(f) if f in FAMILY_STYLE else 99)
    legend = "".join(f'<span data-family="{html.escape(f)}"><svg width="16" height="16">'
                     f'{_marker(f, 8, 8, 4.5)} fill="{"gold" if not FAMILIES[f].learned else FAMILY_STYLE.get(f, ("o", "#777"))[1]}"'
                     f' stroke="black" stroke-width="0.6"/></svg> {html.escape(f)}</span>' for f in families)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in analysis.notes)
    data = json.dumps(points).replace("</", "<\\/")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>Hover a point for its id and metrics; click a family to hide or show it. Black outlines and"
            f" the step line: the Pareto front. Dashed lines: bicubic (the star); points on the better side"
            f" of both lines beat it on both axes.</p><p class='legend'>{legend}</p>"
            f"{''.join(sections)}{f'<ul>{notes}</ul>' if notes else ''}<div id='tip'></div>"
            f"<script>const POINTS = {data};{_SCRIPT}</script></body></html>\n")
    write_text_atomic(path, page)
    return path
