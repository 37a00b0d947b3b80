"""Train one config within a wall-clock budget: time 300 steps, then run the longest full cosine
schedule (in thousands of steps, up to the config's own) that fits what is left.

For borrowed machines that are held for minutes (the eSR-CNN sweep on a GPU,
`benchmarks/esr_cnn_sweep.sh`). Prints the chosen steps and each validation; the run folder is
an ordinary `edgesr train` output (`train_zoo.py --adopt` ships it).

    python benchmarks/train_timeboxed.py NAME BUDGET_S '{"model_id": "...", "steps": N, ...}' OUT_DIR

The JSON holds `TrainConfig` fields; those it leaves out take the dataclass defaults, not the
recipe of the id (`edgesr.train.recipe_for`), so spell the recipe out as esr_cnn_sweep.sh does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from edgesr.progress import Progress
from edgesr.train import TrainConfig, train

PROBE_STEPS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="run name (sub-folder of OUT_DIR)")
    parser.add_argument("budget", type=float, help="seconds for the whole job, probe included")
    parser.add_argument("config", help="TrainConfig fields as JSON; 'steps' is the most to run")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    started = time.time()
    fields = json.loads(args.config)
    if "steps" not in fields:
        raise SystemExit(f"{args.name}: the config needs 'steps', the most steps to run")
    stamps: dict[int, float] = {}

    def probe_progress(event: Progress) -> None:
        if event.kind == "step" and event.done in (50, PROBE_STEPS):
            stamps[event.done] = time.time()

    probe = TrainConfig(**{**fields, "steps": PROBE_STEPS, "val_every": PROBE_STEPS})
    train(probe, out=args.out / args.name / "probe", progress=probe_progress)
    per_step = (stamps[PROBE_STEPS] - stamps[50]) / (PROBE_STEPS - 50)
    validation = time.time() - stamps[PROBE_STEPS]
    left = args.budget - (time.time() - started) - 5 * validation - 10
    steps = max(1000, min(fields["steps"], int(left * 0.92 / per_step) // 1000 * 1000))
    print(f"{args.name}: {per_step * 1000:.2f} ms/step, validation {validation:.1f} s, {left:.0f} s left"
          f" -> {steps} steps", flush=True)
    config = TrainConfig(**{**fields, "steps": steps, "val_every": max(1000, steps // 4)})

    def progress(event: Progress) -> None:
        if event.kind == "validated":
            print(f"{args.name} step {event.done} val {event.values['val_psnr']:.4f}"
                  f" at {time.time() - started:.0f} s", flush=True)

    result = train(config, out=args.out / args.name, progress=progress)
    print(f"{args.name}: done {steps} steps in {result.record['train_seconds']:.0f} s: {result.record['val']}",
          flush=True)


if __name__ == "__main__":
    main()
