"""The paper-format results table: one reader and one writer for eval, bench, search and pareto.

A table is ``{id: {column: value}}`` keyed by model id, with the paper's column names
(``psnr_Set5``, ``ssim_Set14``, ``parameters``, ``speed_<device>``, ...), so that tables from
`edgesr.evaluate`, `edgesr.bench` and a search store compare side by side with the reference
data. On disk: ``.json`` as that mapping, or ``.csv`` with one row per id (``id`` first).

>>> table = {"Bicubic_s2": {"psnr_Set5": 33.66, "parameters": 1}}
>>> write_table(table, "results.csv")                                  # doctest: +SKIP
>>> read_table("results.csv") == table                                 # doctest: +SKIP
True
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from edgesr.atomic import write_text_atomic
from edgesr.errors import EdgesrError

Table = dict[str, dict[str, object]]

#: Suffixes a results table may have.
TABLE_SUFFIXES = (".json", ".csv")
#: Columns of the per-image rows `edgesr.evaluate` returns with ``per_image=True``.
PER_IMAGE_COLUMNS = ("id", "dataset", "image", "psnr", "ssim")


def check_table_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path when it ends in .json or .csv; else the one error every writer gives."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise EdgesrError(f"{path}: results go to a .json or .csv file")
    return path


def table_columns(table: Table) -> list[str]:
    """The columns of a table in first-seen order (the paper's: per set psnr, ssim, then the rest)."""
    seen: dict[str, None] = {}
    for row in table.values():
        seen.update(dict.fromkeys(row))
    return list(seen)


def _cell(value: object) -> str:
    """A CSV cell: floats in full (repr) precision, None empty."""
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def _csv_text(rows: list[dict[str, object]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def table_to_csv(table: Table) -> str:
    """One line per id: ``id,<columns...>``."""
    return _csv_text([{"id": i, **row} for i, row in table.items()], ["id", *table_columns(table)])


def write_table(table: Table, path: str | os.PathLike) -> Path:
    """Write a table atomically: ``.json`` as ``{id: {column: value}}``, ``.csv`` one row per id."""
    path = check_table_path(path)
    text = json.dumps(table, indent=1) + "\n" if path.suffix.lower() == ".json" else table_to_csv(table)
    write_text_atomic(path, text)
    return path


def _value(text: str) -> object:
    """A CSV cell back to a number when it is one (bench rows also hold names, e.g. the backend)."""
    try:
        return float(text)
    except ValueError:
        return text


def read_table(path: str | os.PathLike) -> Table:
    """Read a results table written as JSON (``{id: {column: value}}``) or CSV."""
    path = Path(path)
    if not path.is_file():
        raise EdgesrError(f"{path}: no such results table")
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            return {r.pop("id"): {k: _value(v) for k, v in r.items() if v not in ("", None)} for r in rows}
        table = json.loads(path.read_text())
    except (ValueError, KeyError) as error:
        raise EdgesrError(f"{path}: not a results table ({error})") from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise EdgesrError(f"{path}: not a results table of the form {{id: {{column: value}}}}")
    return table


def compare_tables(ours: Table, reference: Table) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Differences ours - reference for the ids and numeric columns both tables have.

    Returns the per-id deltas and, per column, the mean absolute delta.
    """
    deltas: dict[str, dict[str, float]] = {}
    for model_id, row in ours.items():
        if model_id not in reference:
            continue
        ref = reference[model_id]
        deltas[model_id] = {c: float(v) - float(ref[c]) for c, v in row.items()
                            if c in ref and isinstance(ref[c], (int, float)) and c != "parameters"}
    columns = [c for c in table_columns(ours) if any(c in d for d in deltas.values())]
    means = {c: float(np.mean([abs(d[c]) for d in deltas.values() if c in d])) for c in columns}
    return deltas, means


def write_per_image(rows: list[dict[str, object]], path: str | os.PathLike) -> Path:
    """Per-image rows (`EvalResult.per_image`) as CSV: id, dataset, image, psnr, ssim (, lpips)."""
    columns = [*PER_IMAGE_COLUMNS, *(["lpips"] if any("lpips" in r for r in rows) else [])]
    path = Path(path)
    write_text_atomic(path, _csv_text(rows, columns))
    return path


def per_image_path(output: str | os.PathLike) -> Path:
    """Where the per-image rows of a table written to ``output`` go: ``<name>.per_image.csv``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.per_image.csv")
