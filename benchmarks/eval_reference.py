"""Evaluate the official weights on Set5 + Set14 and compare with the reference tables.

Run by hand (needs ../shared/reference and ../shared/datasets; nothing here is shipped):

    python benchmarks/eval_reference.py --ids reference            # the 15 ids, < 1 min
    python benchmarks/eval_reference.py --ids all --threads 1 --save /tmp/all.json   # 1185 ids

Prints wall times (set preparation and model evaluation separately), the differences to
``expected_on_shared_sets.json`` (the protocol on these very images) and to the paper's table,
and, for ``--ids all``, the Spearman rank correlation of our PSNR/SSIM with the paper's per set.
The paper's copies of Set5/Set14 differ from ours, so only the rank correlation and the
per-family offsets are meaningful against the paper's table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgesr.evaluate import count_images, evaluate, load_set, resolve_models
from edgesr.results import compare_tables, read_table
from edgesr.models import ModelSpec

SHARED = Path(__file__).resolve().parents[2] / "shared"
SETS = ("Set5", "Set14")
console = Console()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties), numpy only."""

    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=np.float64)
        for value in np.unique(x[np.r_[np.diff(np.sort(x)) == 0, False]]):  # average tied ranks
            tied = x == value
            r[tied] = r[tied].mean()
        return r

    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    return float(np.corrcoef(ra, rb)[0, 1])


def delta_table(title: str, ours: dict, reference: dict, show_rows: bool = True) -> dict[str, float]:
    deltas, means = compare_tables(ours, reference)
    table = Table(title=title, box=None)
    table.add_column("id")
    for column in means:
        table.add_column(f"Δ{column}", justify="right")
    if show_rows:
        for model_id, row in deltas.items():
            table.add_row(model_id, *(f"{row[c]:+.5f}" if c.startswith("psnr") else f"{row[c]:+.6f}"
                                      for c in means))
    signed = {c: float(np.mean([d[c] for d in deltas.values()])) for c in means}
    table.add_row("mean Δ", *(f"{signed[c]:+.5f}" if c.startswith("psnr") else f"{signed[c]:+.6f}"
                              for c in means), style="bold")
    table.add_row("mean |Δ|", *(f"{means[c]:.5f}" if c.startswith("psnr") else f"{means[c]:.6f}"
                                for c in means), style="bold")
    console.print(table)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", choices=("reference", "all"), default="reference")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--resize", choices=("torch", "matlab"), default="torch")
    parser.add_argument("--backend", choices=("torch", "auto"), default="torch",
                        help="torch: model forward (reference); auto: fused kernel for one-layer models")
    parser.add_argument("--save", type=Path, default=None, help="write our table (.json/.csv) here")
    parser.add_argument("--load", type=Path, default=None, help="skip evaluation: analyse a saved table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reference = SHARED / "reference"
    datasets = [SHARED / "datasets" / name for name in SETS]
    expected = json.loads((reference / "expected_on_shared_sets.json").read_text())
    paper = json.loads((reference / "paper_results_set5_set14.json").read_text())

    if args.load is not None:
        table = read_table(args.load)
    else:
        ids = list(expected) if args.ids == "reference" else []
        entries = resolve_models(ids, reference / "weights")
        start = time.perf_counter()
        for scale in sorted({ModelSpec.parse(e.id).scale for e in entries}):
            for dataset in datasets:
                load_set(dataset, scale, resize=args.resize)
        prepared = time.perf_counter() - start
        with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("eval", total=len(entries) * count_images(datasets))
            result = evaluate(entries, datasets, resize=args.resize, backend=args.backend,
                              progress=lambda event: bar.advance(task, event.units))
        total = time.perf_counter() - start
        table = result.table
        console.print(f"{len(entries)} models x {count_images(datasets)} images, torch threads"
                      f" {torch.get_num_threads()}, resize {args.resize}, backend {args.backend}:"
                      f" preparing sets {prepared:.1f} s,"
                      f" evaluating {result.seconds:.1f} s, total {total:.1f} s"
                      f" ({result.seconds / len(entries):.3f} s per model)", highlight=False)
        if args.save is not None:
            from edgesr.results import write_table

            write_table(table, args.save)

    in_expected = {i: r for i, r in table.items() if i in expected}
    if in_expected:
        delta_table("ours - expected_on_shared_sets.json", in_expected, expected)
        delta_table("ours - paper table (our Set5/Set14 copies differ from the paper's)", in_expected, paper)
    if len(table) > len(in_expected):
        delta_table(f"ours - paper table, {len(table)} ids (summary only)", table, paper, show_rows=False)
        by_family = Table(title="mean Δ vs paper by family and scale", box=None)
        for column in ("family", "scale", "n", *(f"Δpsnr_{s}" for s in SETS)):
            by_family.add_column(column)
        groups: dict[tuple[str, int], list[str]] = {}
        for model_id in table:
            spec = ModelSpec.parse(model_id)
            groups.setdefault((spec.family, spec.scale), []).append(model_id)
        for (family, scale), ids in sorted(groups.items()):
            offsets = [np.mean([table[i][f"psnr_{s}"] - paper[i][f"psnr_{s}"] for i in ids]) for s in SETS]
            by_family.add_row(family, str(scale), str(len(ids)), *(f"{o:+.3f}" for o in offsets))
        console.print(by_family)
        rank = Table(title="Spearman rank correlation with the paper's table", box=None)
        for column in ("ids", *(f"{m}_{s}" for s in SETS for m in ("psnr", "ssim"))):
            rank.add_column(column)
        subsets = {"all": list(table)}
        for scale in (2, 3, 4):
            subsets[f"scale {scale}"] = [i for i in table if ModelSpec.parse(i).scale == scale]
        for label, ids in subsets.items():
            rank.add_row(f"{label} ({len(ids)})", *(
                f"{spearman(np.array([table[i][c] for i in ids]), np.array([paper[i][c] for i in ids])):.4f}"
                for s in SETS for c in (f"psnr_{s}", f"ssim_{s}")))
        console.print(rank)
        mismatched = [i for i in table if int(table[i]["parameters"]) != int(paper[i]["parameters"])]
        console.print(f"parameters differing from the paper's count: {len(mismatched)} ids"
                      f" {mismatched[:6]}", highlight=False)


if __name__ == "__main__":
    main()
