"""Score every shipped model and the official weights of the same id on the same sets.

The check that the shipped weights generalise beyond the sets they were compared on: run it on
sets the zoo never saw (BSDS100, Urban100, Manga109 after `edgesr datasets fetch`, or any folder
of HR images). Prints a markdown table (ours, official, difference per set) and the count of
models at or above official - 0.05 dB on every set.

    python benchmarks/shipped_vs_official.py --reference /path/to/official/weights \\
        --datasets BSDS100 Urban100 Manga109 [--ids eSR-TM_s2_K7_C16 ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgesr import load_model
from edgesr.evaluate import evaluate, resolve_dataset_folder
from edgesr.weights import shipped_manifest

MARGIN = 0.05  # dB: what the shipped weights must keep against the official ones


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="folder of official <id>.model files")
    parser.add_argument("--datasets", nargs="+", required=True, help="dataset names or folders of HR images")
    parser.add_argument("--ids", nargs="*", help="shipped ids to score (default: all)")
    parser.add_argument("--json", type=Path, help="also write {id: {ours, official}} here")
    args = parser.parse_args()

    ids = args.ids or sorted(shipped_manifest()["models"])
    names = [resolve_dataset_folder(d)[0] for d in args.datasets]
    print("| model | " + " | ".join(f"{n} ours | {n} official | Δ" for n in names) + " |")
    print("|---|" + "---|---|---|" * len(names))
    results, kept = {}, 0
    for model_id in ids:
        ours = evaluate([load_model(model_id)], args.datasets).table[model_id]
        theirs = evaluate([load_model(model_id, Path(args.reference) / f"{model_id}.model")],
                          args.datasets).table[model_id]
        deltas = [ours[f"psnr_{n}"] - theirs[f"psnr_{n}"] for n in names]
        kept += all(d >= -MARGIN for d in deltas)
        cells = [f"{ours[f'psnr_{n}']:.3f} | {theirs[f'psnr_{n}']:.3f} | {d:+.3f}" for n, d in zip(names, deltas)]
        print(f"| {model_id} | " + " | ".join(cells) + " |", flush=True)
        results[model_id] = {"ours": ours, "official": theirs}
    print(f"\n{kept} of {len(ids)} shipped models are at or above official - {MARGIN} dB on every set")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
