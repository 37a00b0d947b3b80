"""Which families make up each Pareto front: a markdown table from `edgesr pareto`'s fronts.json.

    edgesr pareto docs/map/official.sqlite --x speed_cpu --y psnr_Set5 --out docs/map/
    python benchmarks/front_families.py docs/map/fronts.json [more fronts.json ...]

One row per (source, scale): how many front points each family has, the fastest point and the
best point (the ends of the front). Several files (e.g. the paper's own GPU and Raspberry Pi
fronts, made the same way from its results table) print side by side.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from edgesr.models import ModelSpec


def rows(path: Path) -> list[str]:
    """Markdown rows for every (source, scale) front in one fronts.json."""
    out = []
    for source, scales in json.loads(path.read_text()).items():
        for scale, front in sorted(scales.items()):
            if not front:
                continue
            x, y = [key for key in front[0] if key != "id"]
            families = Counter(ModelSpec.parse(point["id"]).family for point in front)
            mix = ", ".join(f"{name} {count}" for name, count in families.most_common())
            fastest, best = front[0], front[-1]
            out.append(f"| {source} | {scale} | {x} | {len(front)} | {mix} | {fastest['id']} ({fastest[x]:.4g} fps,"
                       f" {fastest[y]:.3f} dB) | {best['id']} ({best[x]:.4g} fps, {best[y]:.3f} dB) |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fronts", nargs="+", type=Path, help="fronts.json files written by edgesr pareto")
    args = parser.parse_args()
    print("| source | scale | speed | points | families on the front | fastest | best |")
    print("|---|---|---|---|---|---|---|")
    for path in args.fronts:
        print("\n".join(rows(path)))


if __name__ == "__main__":
    main()
