"""Draw what `edgesr.explain` computes: PNG views and an ``index.html`` linking them.

Views written by `explain`:

* ``filters_<part>.png``: every filter as a tile, rows = channels c, columns = phases
  (diverging colours, one symmetric range per part: blue < 0 < red).
* ``spectrum_<part>.png``: |FFT| of each filter zero-padded to 32 x 32, DC at the tile centre.
* ``orientation.png`` and ``orientation.csv``: the dominant direction of each filter (mean
  removed): the edge orientation it responds to most (0 = horizontal edges, 90 = vertical),
  from the peak of its spectrum, and its anisotropy 0..1 (see `edgesr.explain.orientation`).
* for an image (or a built-in Siemens star): ``winner.png`` (which template wins where: the
  argmax of the softmax weights, or for eSR-MAX of the filter responses), ``confidence.png``
  (the winning weight; eSR-MAX: the margin between the two largest responses), ``weights.png``
  (each template's weight map), ``overlay.png`` (winner colours over the output luma) and
  ``output.png``.

eSR-CNN's image views are written; its filters are not single K x K kernels and are skipped.

>>> explain("eSR-TM_s2_K7_C16", "explain/")                         # doctest: +SKIP
"""

from __future__ import annotations

import colorsys
import csv
import html
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from edgesr.atomic import write_text_atomic
from edgesr.errors import EdgesrError
from edgesr.explain import filter_bank, frequency_response, image_luma, orientation, siemens_star, template_maps
from edgesr.imaging import write_image
from edgesr.models import ModelSpec, count_parameters, family_of, load_model


def diverging(values: np.ndarray, limit: float) -> np.ndarray:
    """Values in [-limit, limit] -> RGB uint8, blue (negative) - white (0) - red (positive)."""
    t = np.clip(values / (limit or 1.0), -1.0, 1.0)[..., None]
    white = np.array([247.0, 247.0, 247.0])
    red, blue = np.array([178.0, 24.0, 43.0]), np.array([33.0, 102.0, 172.0])
    rgb = np.where(t >= 0, white + t * (red - white), white - t * (blue - white))
    return rgb.astype(np.uint8)


_SEQUENTIAL = np.array([[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]], float)


def sequential(values: np.ndarray, low: float = 0.0, high: float | None = None) -> np.ndarray:
    """Values in [low, high] -> RGB uint8 along a plasma-like ramp (dark blue to yellow)."""
    high = float(values.max()) if high is None else high
    t = np.clip((values - low) / ((high - low) or 1.0), 0.0, 1.0) * (len(_SEQUENTIAL) - 1)
    i = np.minimum(t.astype(int), len(_SEQUENTIAL) - 2)
    f = (t - i)[..., None]
    return ((1 - f) * _SEQUENTIAL[i] + f * _SEQUENTIAL[i + 1]).astype(np.uint8)


def palette(count: int) -> np.ndarray:
    """``count`` distinct RGB uint8 colours (evenly spaced hues, alternating lightness)."""
    colours = [colorsys.hls_to_rgb(k / max(count, 1), 0.45 if k % 2 == 0 else 0.65, 0.85) for k in range(count)]
    return np.rint(np.array(colours) * 255).astype(np.uint8)


def tile_grid(tiles: np.ndarray, row_labels: list[str], col_labels: list[str], zoom: int = 1,
              gap: int = 2, title: str = "") -> Image.Image:
    """(rows, cols, h, w, 3) uint8 tiles -> one labelled grid image."""
    rows, cols, h, w, _ = tiles.shape
    h, w = h * zoom, w * zoom
    left, top = 34, 30 if title else 16
    width = left + cols * (w + gap) + gap
    if title:
        width = max(width, int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title)) + 8)
    canvas = Image.new("RGB", (width, top + rows * (h + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 2), title, fill="black")
    for j, label in enumerate(col_labels):
        draw.text((left + j * (w + gap) + gap, top - 13), label, fill="black")
    for i, label in enumerate(row_labels):
        draw.text((2, top + i * (h + gap) + gap + h // 2 - 5), label, fill="black")
        for j in range(cols):
            tile = Image.fromarray(tiles[i, j]).resize((w, h), Image.NEAREST)
            canvas.paste(tile, (left + j * (w + gap) + gap, top + i * (h + gap) + gap))
    return canvas


def _save(image: Image.Image | np.ndarray, path: Path) -> Path:
    array = np.asarray(image) if isinstance(image, Image.Image) else image
    return write_image(path, np.ascontiguousarray(array, dtype=np.uint8))


def _phase_labels(scale: int) -> list[str]:
    return [f"{i},{j}" for i in range(scale) for j in range(scale)]


def _zoom(side: int, target: int) -> int:
    return max(1, target // side)


# --- the report --------------------------------------------------------------------------------

@dataclass
class ExplainReport:
    """Files written by `explain` (name -> path), the orientation summary rows and how the
    model's templates combine ("max" or "softmax", `TemplateMaps.reduction`)."""

    files: dict[str, Path] = field(default_factory=dict)
    orientation: list[dict] = field(default_factory=list)
    index: Path | None = None
    reduction: str = ""


def explain(model: str | torch.nn.Module, out: str | os.PathLike, weights: str | os.PathLike | None = None,
            image: str | os.PathLike | None = None) -> ExplainReport:
    """Write the filter, spectrum, orientation and template-map views of a model to ``out``.

    Args:
        model: an id (with ``weights``, else its shipped weights) or a built module.
        out: output folder (created); holds PNG files, ``orientation.csv`` and ``index.html``.
        weights: official ``.model`` or edgesr ``.safetensors`` file.
        image: image whose template maps to show (its luma is the LR input); default: a
            Siemens star.
    """
    if isinstance(model, (str, ModelSpec)):
        module = load_model(model, weights)
    else:
        module, weights = model, weights or "the module given"
    spec: ModelSpec = module.spec
    family = family_of(spec)
    if family.templates is None:
        raise EdgesrError(f"{spec.id}: explain supports eSR-MAX, eSR-TM, eSR-TR (filters and maps) and"
                          " eSR-CNN (maps)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = ExplainReport()
    if family.parts:
        _filter_views(module, out, report)
    lr = siemens_star() if image is None else image_luma(image)
    _map_views(module, lr, out, report)
    report.index = _write_index(module, out, report, weights, image)
    return report


def _filter_views(model: torch.nn.Module, out: Path, report: ExplainReport) -> None:
    spec: ModelSpec = model.spec
    bank = filter_bank(model)
    rows = [f"c{c}" for c in range(spec.C)]
    columns = _phase_labels(spec.scale)
    for part, filters in bank.items():
        limit = float(np.abs(filters).max())
        tiles = diverging(filters, limit)
        grid = tile_grid(tiles, rows, columns, zoom=_zoom(spec.K, 48),
                         title=f"{spec.id} {part} filters (c x phase), |w| <= {limit:.3g}")
        report.files[f"filters_{part}"] = _save(grid, out / f"filters_{part}.png")
        spectrum = frequency_response(filters)
        peak = float(spectrum.max())
        grid = tile_grid(sequential(spectrum, 0.0, peak), rows, columns, zoom=2,
                         title=f"{spec.id} {part} |FFT| (DC centred), max {peak:.3g}")
        report.files[f"spectrum_{part}"] = _save(grid, out / f"spectrum_{part}.png")
        edge, anisotropy = orientation(filters)
        for c in range(spec.C):
            for phase in range(spec.scale**2):
                report.orientation.append({"part": part, "channel": c, "phase": phase,
                                           "edge_orientation_deg": round(float(edge[c, phase]), 2),
                                           "anisotropy": round(float(anisotropy[c, phase]), 4)})
    report.files["orientation"] = _save(_orientation_grid(spec, bank), out / "orientation.png")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(report.orientation[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(report.orientation)
    write_text_atomic(out / "orientation.csv", buffer.getvalue())
    report.files["orientation_csv"] = out / "orientation.csv"


def _orientation_grid(spec: ModelSpec, bank: dict[str, np.ndarray]) -> Image.Image:
    """One glyph per filter: a line along its edge orientation, length = anisotropy, hue = angle."""
    side, gap = 36, 2
    parts = list(bank)
    phases = spec.scale**2
    cols = len(parts) * phases
    left, top = 34, 30
    title = f"{spec.id} edge orientation (line) and anisotropy (length); colour = angle"
    width = max(left + cols * (side + gap) + 8 * len(parts),
                int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title)) + 8)
    canvas = Image.new("RGB", (width, top + spec.C * (side + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill="black")
    for p, part in enumerate(parts):
        edge, anisotropy = orientation(bank[part])
        x0 = left + p * (phases * (side + gap) + 8)
        draw.text((x0, top - 13), part, fill="black")
        for c in range(spec.C):
            if p == 0:
                draw.text((2, top + c * (side + gap) + side // 2 - 5), f"c{c}", fill="black")
            for phase in range(phases):
                cx = x0 + phase * (side + gap) + side / 2
                cy = top + c * (side + gap) + side / 2
                draw.rectangle([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], outline="#ddd")
                angle = math.radians(edge[c, phase])
                half = (side / 2 - 2) * float(anisotropy[c, phase])
                dx, dy = half * math.cos(angle), -half * math.sin(angle)
                red, green, blue = colorsys.hls_to_rgb(edge[c, phase] / 180.0, 0.42, 0.9)
                colour = (int(red * 255), int(green * 255), int(blue * 255))
                draw.line([cx - dx, cy - dy, cx + dx, cy + dy], fill=colour, width=3)
    return canvas


def _map_views(model: torch.nn.Module, lr: np.ndarray, out: Path, report: ExplainReport) -> None:
    spec: ModelSpec = model.spec
    maps = template_maps(model, lr)
    colours = palette(spec.C)
    report.files["input"] = _save(np.clip(np.rint((lr - 16.0) * 255.0 / 219.0), 0, 255), out / "input.png")
    report.files["output"] = _save(np.clip(np.rint((maps.output - 16.0) * 255.0 / 219.0), 0, 255),
                                   out / "output.png")
    report.files["winner"] = _save(_with_legend(colours[maps.winner], colours), out / "winner.png")
    report.reduction = maps.reduction
    if maps.reduction == "max":
        confidence = sequential(maps.confidence, 0.0, float(np.percentile(maps.confidence, 99)) or None)
    else:
        confidence = sequential(maps.confidence, 1.0 / spec.C, 1.0)
    report.files["confidence"] = _save(confidence, out / "confidence.png")
    shade = ((maps.output - 16.0) / 219.0).clip(0, 1)[..., None]
    overlay = colours[maps.winner] * (0.35 + 0.65 * shade)
    report.files["overlay"] = _save(_with_legend(overlay.astype(np.uint8), colours), out / "overlay.png")
    h, w = maps.winner.shape
    factor = max(1, math.ceil(max(h, w) / 192))
    small = maps.weights[:, ::factor, ::factor]
    columns = min(spec.C, 4)
    rows = math.ceil(spec.C / columns)
    tiles = np.full((rows, columns, *small.shape[1:], 3), 255, np.uint8)
    for c in range(spec.C):
        tiles[c // columns, c % columns] = sequential(small[c], 0.0, 1.0)
    grid = tile_grid(tiles, [f"c{r * columns}" for r in range(rows)], [f"+{k}" for k in range(columns)],
                     title=f"{spec.id} template weights (0 dark .. 1 yellow)")
    report.files["weights"] = _save(grid, out / "weights.png")


def _with_legend(image: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Append a strip of numbered colour swatches (template index) below an RGB image."""
    h, w, _ = image.shape
    swatch = 18
    per_row = max(1, w // (swatch + 16))
    rows = math.ceil(len(colours) / per_row)
    canvas = Image.new("RGB", (w, h + rows * (swatch + 4) + 4), "white")
    canvas.paste(Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, colour in enumerate(colours):
        x = (k % per_row) * (swatch + 16) + 2
        y = h + 4 + (k // per_row) * (swatch + 4)
        draw.rectangle([x, y, x + swatch, y + swatch], fill=tuple(int(v) for v in colour))
        draw.text((x + swatch + 2, y + 4), str(k), fill="black")
    return np.asarray(canvas)


def _write_index(model: torch.nn.Module, out: Path, report: ExplainReport, weights: object,
                 image: object) -> Path:
    spec: ModelSpec = model.spec
    esc = html.escape

    def figure(key: str, caption: str) -> str:
        if key not in report.files:
            return ""
        name = report.files[key].name
        return (f"<figure><a href='{esc(name)}'><img src='{esc(name)}' alt='{esc(caption)}'></a>"
                f"<figcaption>{esc(caption)}</figcaption></figure>")

    sections = [(f"<h1>{esc(spec.id)}</h1><p>{count_parameters(model)} parameters; weights:"
                 f" {esc(str(weights) if weights else 'initialisation (no weights given)')}</p>")]
    parts = family_of(spec).parts
    if parts:
        sections.append("<h2>Filters</h2><p>Rows: channel c; columns: sub-pixel phase (i, j) of the"
                        " output block. Value filters upscale; key/query filters score which template fits"
                        " (the softmax over channels picks it).</p>")
        sections.append("".join(figure(f"filters_{p}", f"{p} filters") for p in parts))
        sections.append("<h2>Frequency responses</h2>"
                        + "".join(figure(f"spectrum_{p}", f"{p}: |FFT| zero-padded to 32x32") for p in parts))
        summary = []
        for part in parts:
            rows = [r for r in report.orientation if r["part"] == part]
            mean_anisotropy = float(np.mean([r["anisotropy"] for r in rows]))
            directional = [r for r in rows if r["anisotropy"] >= 0.5]
            bins = np.histogram([r["edge_orientation_deg"] for r in directional], bins=4, range=(0, 180))[0]
            summary.append(f"<tr><td>{esc(part)}</td><td>{mean_anisotropy:.3f}</td><td>{len(directional)}"
                           f" of {len(rows)}</td>" + "".join(f"<td>{n}</td>" for n in bins) + "</tr>")
        sections.append("<h2>Directionality</h2>" + figure("orientation", "edge orientation per filter")
                        + "<table><tr><th>part</th><th>mean anisotropy</th><th>directional (>= 0.5)</th>"
                          "<th>0-45</th><th>45-90</th><th>90-135</th><th>135-180 deg</th></tr>"
                        + "".join(summary) + "</table><p>Per filter: <a href='orientation.csv'>orientation.csv"
                          "</a> (0 deg = horizontal edges, 90 = vertical).</p>")
    what = "largest filter response" if report.reduction == "max" else "softmax weight"
    sections.append(f"<h2>Templates on an image</h2><p>Input: {esc(str(image) if image else 'a Siemens star')}"
                    f" (luma, used as the LR image). Winner: the template with the largest {what} at each"
                    " output pixel.</p>"
                    + figure("input", "input (LR luma)") + figure("output", "model output")
                    + figure("winner", "winning template") + figure("overlay", "winner over the output")
                    + figure("confidence", "margin of the two largest responses" if report.reduction == "max"
                             else "winning weight (1/C .. 1)")
                    + figure("weights", "weight map of every template"))
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>edgesr explain {esc(spec.id)}</title><style>body{{font-family:sans-serif;margin:1.5em}}"
            "figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}img{max-width:900px;"
            "image-rendering:pixelated}td,th{padding:0 8px;text-align:left}</style></head><body>"
            + "".join(sections) + "</body></html>\n")
    path = out / "index.html"
    write_text_atomic(path, page)
    return path
