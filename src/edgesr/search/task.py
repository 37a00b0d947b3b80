"""One id's task: train (or take given weights) and evaluate it, then measure its speed.

`attempt_prepare` is what an executor (`edgesr.search.executors`) runs for each id, in this
process, a process pool or a Ray task; `measure_speed` runs in the driver only, one model at a
time, so that speeds compare. Progress goes to an `edgesr.progress` reporter ("stage" events).
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from edgesr.bench import bench
from edgesr.errors import EdgesrError, Terminated, describe
from edgesr.evaluate import ModelEntry, evaluate
from edgesr.models import family_of
from edgesr.progress import Progress, Reporter
from edgesr.search.settings import SearchSettings
from edgesr.train import TrainConfig, output_paths, recipe_for, train
from edgesr.weights import weight_file

#: Row columns copied from `edgesr.bench` rows (numbers only, so tables stay numeric).
BENCH_COLUMNS = ("speed", "ms", "spread_ms", "gflops", "gemm_gflops", "peak_fraction")
#: Columns the speed measurement adds without a device suffix.
BENCH_EXTRAS = ("macs", "speedup_vs_torch_reference")

@dataclass
class Outcome:
    """What one prepare task returns to the driver (picklable: it crosses processes)."""

    id: str
    row: dict | None
    info: dict
    error: str | None = None


def train_config(model_id: str, settings: SearchSettings) -> TrainConfig:
    """The `TrainConfig` of an id: the shipped recipe, ``steps`` overridden, validation on the
    first evaluation set every tenth of the run (at most every 1000 steps)."""
    steps = settings.steps or recipe_for(model_id)["steps"]
    return TrainConfig.from_recipe(model_id, steps=steps, data=list(settings.train_data), val=settings.datasets[:1],
                                   val_every=min(1000, max(1, steps // 10)), seed=settings.seed,
                                   device=settings.device)


def obtain_weights(model_id: str, settings: SearchSettings, work_dir: Path,
                   report: Reporter | None = None) -> tuple[Path | None, dict]:
    """The weights to evaluate for an id and how they were obtained.

    Given folder: its file (Bicubic: the exact kernel, None, when the folder has none).
    Otherwise train in ``work_dir``: reuse finished weights with the same config, resume a
    checkpoint, or start afresh.
    """
    learned = family_of(model_id).learned
    if settings.weights is not None:
        path = weight_file(model_id, settings.weights)
        if path is None and learned:
            raise EdgesrError(f"{settings.weights}: no weight file for {model_id}"
                              f" ({model_id}.safetensors or {model_id}.model)")
        return path, {"weights": str(path) if path else "built-in", "trained": False}
    if not learned:
        return None, {"weights": "built-in", "trained": False}
    config = train_config(model_id, settings)
    paths = output_paths(work_dir, model_id)
    if paths["sidecar"].is_file() and paths["weights"].is_file():
        record = json.loads(paths["sidecar"].read_text())
        if record.get("config") == asdict(config):
            return paths["weights"], {"weights": str(paths["weights"]), "trained": True, "reused": True,
                                      "steps": record["steps"], "train_seconds": record["train_seconds"]}
    resume = paths["checkpoint"].is_file()
    first_step: list[int] = []

    def progress(event: Progress) -> None:
        if event.kind == "step":
            if not first_step:
                first_step.append(event.done - 1)
            if report is not None:
                report(Progress("search", "stage", model_id, done=event.done, total=config.steps,
                                values={"stage": "train"}))

    if report is not None:
        report(Progress("search", "stage", model_id, done=0, total=config.steps, values={"stage": "train"}))
    result = train(config, out=work_dir, resume=resume, progress=progress)
    return result.weights, {"weights": str(result.weights), "trained": True, "reused": False,
                            "resumed_from_step": first_step[0] if first_step else config.steps,
                            "steps": result.record["steps"], "train_seconds": result.record["train_seconds"]}


def prepare(model_id: str, settings: SearchSettings, work_dir: str | os.PathLike,
            report: Reporter | None = None) -> tuple[dict, dict]:
    """Train (or load) and evaluate one id -> (quality row, info). Raises on failure."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    weights, info = obtain_weights(model_id, settings, work_dir, report)
    trained = time.perf_counter()
    if report is not None:
        report(Progress("search", "stage", model_id, values={"stage": "eval"}))
    result = evaluate([ModelEntry(model_id, weights)], settings.datasets, backend="auto")
    row = result.table[model_id]
    bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise EdgesrError(f"{model_id}: non-finite {', '.join(bad)} (NaN or infinite outputs)")
    if result.skipped:
        raise EdgesrError(f"{model_id}: evaluated on part of the sets only ({result.skipped[0]})")
    info["seconds"] = {"weights": round(trained - started, 2), "eval": round(time.perf_counter() - trained, 2)}
    info["host"], info["pid"] = platform.node(), os.getpid()
    return row, info


def measure_speed(model_id: str, settings: SearchSettings) -> tuple[dict, dict]:
    """Bench one id on this machine -> (speed columns, info). Speed does not depend on weights."""
    started = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        rows, info = bench([model_id], backend="auto", device=settings.device, threads=settings.threads,
                           repeats=settings.bench_repeats, size=tuple(settings.bench_size), baselines=False)
    finally:
        torch.set_num_threads(threads)  # bench sets its own; training in this process keeps the default
    row = rows[model_id]
    suffix = str(info["device"]).split(":")[0]
    columns = {f"{name}_{suffix}": row[f"{name}_{suffix}"] for name in BENCH_COLUMNS
               if f"{name}_{suffix}" in row}
    columns.update({name: row[name] for name in BENCH_EXTRAS if name in row})
    bench_info = {"backend": row["backend"], "threads": row["threads"], "machine": info["machine"],
                  "libraries": info["libraries"], "dtype": info["dtype"], "repeats": settings.bench_repeats,
                  "size": list(settings.bench_size), "seconds": round(time.perf_counter() - started, 2)}
    return columns, bench_info


_interrupted = threading.Event()


def attempt_prepare(model_id: str, settings: SearchSettings, work_dir: str,
                    report: Reporter | None = None) -> Outcome:
    """`prepare` that returns failures as an `Outcome` instead of raising (for executors).

    A Ctrl-C in the driver's own process still stops the search (it is not an id's failure).
    """
    threads = torch.get_num_threads()
    if settings.train_threads:
        torch.set_num_threads(settings.train_threads)
    try:
        row, info = prepare(model_id, settings, work_dir, report)
    except Exception as error:  # noqa: BLE001 - any failure of one id is recorded, the search goes on
        if _interrupted.is_set():
            raise KeyboardInterrupt from None
        return Outcome(model_id, None, {"host": platform.node()}, describe(error))
    finally:
        torch.set_num_threads(threads)
    return Outcome(model_id, row, info)


@contextmanager
def interruptible() -> Iterator[None]:
    """Mark Ctrl-C and SIGTERM in this process, so that `attempt_prepare` re-raises them instead
    of recording the id as failed (training turns KeyboardInterrupt into an error message)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in signals}

    def handler(signum: int, frame: object) -> None:
        _interrupted.set()
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    for number in signals:
        signal.signal(number, handler)
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before)
        _interrupted.clear()
