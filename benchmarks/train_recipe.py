"""Measure training recipes side by side: what makes eSR training reach official quality fast.

Run by hand. Each variant trains the same id from the same seed for the same number of steps
with `edgesr.train`, then the script evaluates it, and the official weights of the id when
--reference is given, on Set5 and Set14 with the paper protocol, and prints a markdown table
(time, PSNR, difference to the official weights on the same images).

    python benchmarks/train_recipe.py --data /path/Sun80 --set5 /path/Set5 --set14 /path/Set14 \
        --reference /path/official/weights [--model eSR-TM_s2_K7_C16] [--steps 3000] [--variants ...]

Results measured on this project's machines are kept in benchmarks/train_recipe.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from edgesr.evaluate import evaluate
from edgesr.models import create_model
from edgesr.train import TrainConfig, train

#: name -> TrainConfig overrides. "patches" is the plain recipe (as the paper's code would train).
VARIANTS = {
    "patches": {"sampling": "patches", "whiten": False, "batch_size": 32, "patch_size": 24, "init": "paper"},
    "patches+whiten": {"sampling": "patches", "whiten": True, "batch_size": 32, "patch_size": 24, "init": "paper"},
    # ESPCN and eSR-CNN only: the data-free bicubic start of edgesr.warm_start
    "bicubic": {"sampling": "patches", "whiten": False, "batch_size": 32, "patch_size": 24, "init": "bicubic"},
    "bicubic+whiten": {"sampling": "patches", "whiten": True, "batch_size": 32, "patch_size": 24, "init": "bicubic"},
    "pixels": {"sampling": "pixels", "whiten": False, "batch_size": 8192},
    "pixels+whiten": {"sampling": "pixels", "whiten": True, "batch_size": 8192},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--set5", required=True)
    parser.add_argument("--set14", required=True)
    parser.add_argument("--reference", help="folder of official <id>.model files")
    parser.add_argument("--model", default="eSR-TM_s2_K7_C16")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--variants", nargs="*", default=["patches", "patches+whiten", "pixels", "pixels+whiten"],
                        choices=list(VARIANTS))
    args = parser.parse_args()

    sets = [args.set5, args.set14]
    names = [Path(s).name for s in sets]
    official = None
    if args.reference:
        path = Path(args.reference) / f"{args.model}.model"
        official = evaluate([create_model(args.model, weights=path)], sets).table[args.model]
    print(f"{args.model}, {args.steps} steps, lr {args.lr}, threads {args.threads or 'default'}\n")
    header = "| variant | train s | " + " | ".join(f"psnr_{n}" for n in names)
    if official:
        header += " | " + " | ".join(f"vs official {n}" for n in names)
    print(header + " |")
    print("|" + "---|" * (header.count("|")) )
    for name in args.variants:
        config = TrainConfig(args.model, data=[args.data], val=[args.set5], steps=args.steps, lr=args.lr,
                             val_every=args.steps, threads=args.threads, **VARIANTS[name])
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            result = train(config, out=out)
            seconds = time.perf_counter() - started
            row = evaluate([create_model(args.model, weights=result.weights)], sets).table[args.model]
        cells = [f"{row[f'psnr_{n}']:.3f}" for n in names]
        if official:
            cells += [f"{row[f'psnr_{n}'] - official[f'psnr_{n}']:+.3f}" for n in names]
        print(f"| {name} | {seconds:.0f} | " + " | ".join(cells) + " |", flush=True)
    if official:
        print("\nofficial weights, same images: " + ", ".join(f"psnr_{n} {official[f'psnr_{n}']:.3f}" for n in names))


if __name__ == "__main__":
    main()
