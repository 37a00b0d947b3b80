"""The search: for every id, train (or take given weights), evaluate, bench; one store row each.

Stages and where they run:

* **prepare** (train + evaluate) runs in an executor (`edgesr.search.executors`): in this
  process, a process pool or Ray tasks. Training resumes from its checkpoint in the work
  folder; finished weights whose sidecar holds the same config are reused, not retrained.
* **bench** (speed) always runs in the driver, one model at a time with nothing else of the
  search running, so speeds compare: inline after each id when sequential, after the parallel
  phase otherwise (rows wait in the store as 'evaluated' meanwhile and are never exported).

Crash safety: the store is written only by the driver, one committed row per finished stage;
a killed search (even ``kill -9``) restarts where it stopped, with no row lost or duplicated.
A lock file keeps two searches off one store.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import platform
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgesr.errors import EdgesrError, Terminated, describe
from edgesr.models import ModelSpec
from edgesr.weights import weight_file

if TYPE_CHECKING:
    from edgesr.search.store import ResultsStore

#: Row columns copied from `edgesr.bench` rows (numbers only, so tables stay numeric).
BENCH_COLUMNS = ("speed", "ms", "spread_ms", "gflops", "gemm_gflops", "peak_fraction")
#: Columns the speed measurement adds without a device suffix.
BENCH_EXTRAS = ("macs", "speedup_vs_torch_reference")

Event = dict
Reporter = Callable[[Event], None]


@dataclass
class SearchSettings:
    """What defines a search's numbers (recorded in the store; a rerun must match).

    Attributes:
        datasets: evaluation sets (names or folders); the first one also validates training.
        train_data: training sets (names or folders); unused with ``weights``.
        steps: override the recipe's optimiser steps (None: `edgesr.train.recipe_for`).
        weights: folder of ``<id>.safetensors`` / ``<id>.model`` to evaluate instead of training.
        bench_size: output size (H, W) of the speed measurement (the paper: Full-HD).
        bench_repeats: timed runs per model (medians reported).
        device: where training and speed run ("cpu", "cuda", "auto").
        threads: torch threads for the speed measurement (None: this machine's default).
        train_threads: torch threads per train + eval task (None: torch's default; the CLI
            gives each of N parallel workers cores / N).
        seed: training seed.
    """

    datasets: list[str]
    train_data: list[str] = field(default_factory=lambda: ["T91", "General100"])
    steps: int | None = None
    weights: str | None = None
    bench_size: tuple[int, int] = (1080, 1920)
    bench_repeats: int = 5
    device: str = "cpu"
    threads: int | None = None
    train_threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.datasets:
            raise EdgesrError("a search needs at least one evaluation dataset (--datasets)")
        if self.steps is not None and self.steps < 1:
            raise EdgesrError(f"--steps must be positive, got {self.steps}")
        if min(self.bench_size) < 1 or self.bench_repeats < 1:
            raise EdgesrError("bench size and repeats must be positive")
        self.datasets = [_absolute(d) for d in self.datasets]
        self.train_data = [_absolute(d) for d in self.train_data]
        if self.weights is not None:
            folder = Path(self.weights).expanduser()
            if not folder.is_dir():
                raise EdgesrError(f"{self.weights}: not a folder of weight files")
            self.weights = str(folder.resolve())

    def identity(self, ids: list[str] | None = None) -> dict:
        """The settings a store is bound to: everything that changes a row's numbers.

        Training recipes are those of the kinds of model in ``ids`` (all kinds when None), so
        that retuning, say, the deep recipe does not orphan a store of one-layer models.
        """
        import torch

        from edgesr.train import RECIPES, recipe_kinds

        kinds = sorted(RECIPES) if ids is None else sorted(recipe_kinds(ids))
        return {"datasets": self.datasets, "protocol": "paper",
                "training": None if self.weights else {"data": self.train_data, "steps": self.steps,
                                                       "recipes": {k: RECIPES[k] for k in kinds},
                                                       "seed": self.seed},
                "weights": self.weights, "bench_size": list(self.bench_size), "device": self.device,
                "bench_threads": self.threads or torch.get_num_threads()}


def with_known_recipes(identity: dict, known: dict | None) -> dict:
    """``identity`` plus the recipes a store already records for kinds this run does not use.

    A store then grows kind by kind; a kind it knows with another recipe still differs.
    """
    mine, theirs = (identity.get("training") or {}), ((known or {}).get("training") or {})
    if not mine or not isinstance(theirs.get("recipes"), dict):
        return identity
    recipes = {**theirs["recipes"], **mine["recipes"]}
    return {**identity, "training": {**mine, "recipes": recipes}}


def only_new_kinds(identity: dict, known: dict, held: Iterable[str] = ()) -> bool:
    """True when ``identity`` equals ``known`` but for recipes of kinds the store did not have,
    and none of the ids it ``held`` is of such a kind (an id trained under a recipe the store
    did not record, say before eSR-CNN had its own, must not take the new recipe's name)."""
    from edgesr.train import recipe_kinds

    def without_recipes(settings: dict) -> dict:
        training = settings.get("training")
        return {**settings, "training": {**training, "recipes": None}} if training else settings

    ours = (identity.get("training") or {}).get("recipes")
    theirs = (known.get("training") or {}).get("recipes")
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return False
    added = set(ours) - set(theirs)
    return (without_recipes(identity) == without_recipes(known)
            and all(ours.get(kind) == recipe for kind, recipe in theirs.items())
            and not recipe_kinds(held) & added)


def _absolute(dataset: str) -> str:
    """Folders as absolute paths (a resumed run may start elsewhere); names unchanged."""
    path = Path(dataset).expanduser()
    return str(path.resolve()) if path.is_dir() else str(dataset)


@dataclass
class Outcome:
    """What one prepare task returns to the driver (picklable: it crosses processes)."""

    id: str
    row: dict | None
    info: dict
    error: str | None = None


# --- one id ------------------------------------------------------------------------------------

def train_config(model_id: str, settings: SearchSettings):
    """The `TrainConfig` of an id: the shipped recipe, ``steps`` overridden, validation on the
    first evaluation set every tenth of the run (at most every 1000 steps)."""
    from edgesr.train import TrainConfig, recipe_for

    recipe = recipe_for(model_id)
    if settings.steps is not None:
        recipe["steps"] = settings.steps
    val_every = min(1000, max(1, recipe["steps"] // 10))
    return TrainConfig(model_id, data=list(settings.train_data), val=settings.datasets[:1],
                       val_every=val_every, seed=settings.seed, device=settings.device, **recipe)


def obtain_weights(model_id: str, settings: SearchSettings, work_dir: Path,
                   report: Reporter | None = None) -> tuple[Path | None, dict]:
    """The weights to evaluate for an id and how they were obtained.

    Given folder: its file (Bicubic: the exact kernel, None, when the folder has none).
    Otherwise train in ``work_dir``: reuse finished weights with the same config, resume a
    checkpoint, or start afresh.
    """
    spec = ModelSpec.parse(model_id)
    if settings.weights is not None:
        path = weight_file(model_id, settings.weights)
        if path is None and spec.family != "Bicubic":
            raise EdgesrError(f"{settings.weights}: no weight file for {model_id}"
                              f" ({model_id}.safetensors or {model_id}.model)")
        return path, {"weights": str(path) if path else "built-in", "trained": False}
    if spec.family == "Bicubic":
        return None, {"weights": "built-in", "trained": False}
    import json

    from edgesr.train import output_paths, train

    config = train_config(model_id, settings)
    paths = output_paths(work_dir, model_id)
    if paths["sidecar"].is_file() and paths["weights"].is_file():
        record = json.loads(paths["sidecar"].read_text())
        if record.get("config") == asdict(config):
            return paths["weights"], {"weights": str(paths["weights"]), "trained": True, "reused": True,
                                      "steps": record["steps"], "train_seconds": record["train_seconds"]}
    resume = paths["checkpoint"].is_file()
    first_step: list[int] = []

    def progress(event: dict) -> None:
        if "loss" in event:
            if not first_step:
                first_step.append(event["step"] - 1)
            if report is not None:
                report({"event": "stage", "id": model_id, "stage": "train", "step": event["step"],
                        "steps": config.steps})

    if report is not None:
        report({"event": "stage", "id": model_id, "stage": "train", "step": 0, "steps": config.steps})
    result = train(config, out=work_dir, resume=resume, progress=progress)
    return result.weights, {"weights": str(result.weights), "trained": True, "reused": False,
                            "resumed_from_step": first_step[0] if first_step else config.steps,
                            "steps": result.record["steps"], "train_seconds": result.record["train_seconds"]}


def prepare(model_id: str, settings: SearchSettings, work_dir: str | os.PathLike,
            report: Reporter | None = None) -> tuple[dict, dict]:
    """Train (or load) and evaluate one id -> (quality row, info). Raises on failure."""
    from edgesr.evaluate import ModelEntry, evaluate

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    weights, info = obtain_weights(model_id, settings, work_dir, report)
    trained = time.perf_counter()
    if report is not None:
        report({"event": "stage", "id": model_id, "stage": "eval"})
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
    import torch

    from edgesr.bench import bench

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


def forget_speeds(results: ResultsStore, ids: list[str]) -> None:
    """Turn the finished rows of ``ids`` back into 'evaluated' ones without their speed columns."""
    prefixes = tuple(f"{name}_" for name in BENCH_COLUMNS)
    for model_id in ids:
        record = results.record(model_id)
        if record is None or record["status"] != "done":
            continue
        row = {k: v for k, v in record["row"].items() if not k.startswith(prefixes) and k not in BENCH_EXTRAS}
        info = {k: v for k, v in record["info"].items() if k != "bench"}
        results.put_evaluated(model_id, row, info)


_interrupted = threading.Event()


def attempt_prepare(model_id: str, settings: SearchSettings, work_dir: str,
                    report: Reporter | None = None) -> Outcome:
    """`prepare` that returns failures as an `Outcome` instead of raising (for executors).

    A Ctrl-C in the driver's own process still stops the search (it is not an id's failure).
    """
    import torch

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


# --- the whole search --------------------------------------------------------------------------

@dataclass
class SearchReport:
    """What a run did: ids finished now, failures now, ids skipped as already done/failed."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped_done: int = 0
    skipped_failed: int = 0
    seconds: float = 0.0


def default_work_dir(store: str | os.PathLike) -> Path:
    """Training checkpoints and weights of a store: ``<store without suffix>.work`` beside it."""
    store = Path(store)
    return store.with_name(f"{store.stem}.work")


@contextmanager
def store_lock(work_dir: Path) -> Iterator[None]:
    """Hold ``<work_dir>/.lock`` (released by the OS even on ``kill -9``)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with open(work_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise EdgesrError(f"{work_dir}: another search (pid {owner}) is using this store") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def run_search(ids: list[str], store: str | os.PathLike, settings: SearchSettings, executor: str = "local",
               workers: int = 1, address: str | None = None, retry_failed: bool = False,
               work_dir: str | os.PathLike | None = None, report: Reporter | None = None,
               rebench: bool = False) -> SearchReport:
    """Run (or resume) a search over ``ids``, writing each finished id to ``store``.

    Args:
        ids: model ids (see `edgesr.search.grid.select_ids`).
        store: SQLite results file (created; an existing one must have the same settings).
        settings: the `SearchSettings`.
        executor: "local" (this process when ``workers == 1``, else a process pool) or "ray".
        workers: parallel prepare tasks (local pool size; Ray: CPUs of a local instance).
        address: Ray cluster address (None: start a local Ray instance).
        retry_failed: also run ids whose last attempt failed (otherwise they are skipped).
        rebench: measure the speed of finished ids again (their quality columns are kept), e.g.
            on a quieter machine; a stop midway leaves them to be benched by the next run.
        work_dir: training outputs (default `default_work_dir`); with Ray on several machines
            it must be a shared folder, as must the datasets and weights.
        report: called with progress events: {"event": "start", "total", "ids"},
            {"event": "stage", "id", "stage", ...} and {"event": "finished", "id", "status", "row" or
            "error"}.
    Returns:
        a `SearchReport`.
    """
    from edgesr.search.executors import make_executor
    from edgesr.search.store import ResultsStore

    started = time.perf_counter()
    work = Path(work_dir) if work_dir is not None else default_work_dir(store)
    outcome = SearchReport()
    emit = report or (lambda event: None)
    with store_lock(work), ResultsStore(store) as results:
        known = results.settings()
        identity = with_known_recipes(settings.identity(ids), known)
        if known is not None and identity != known and only_new_kinds(identity, known, results.statuses()):
            results.replace_settings(identity)
        results.bind_settings(identity)
        if rebench:
            forget_speeds(results, ids)
        statuses = results.statuses()
        outcome.skipped_done = sum(statuses.get(i) == "done" for i in ids)
        outcome.skipped_failed = 0 if retry_failed else sum(statuses.get(i) == "failed" for i in ids)
        pending = [i for i in ids if statuses.get(i) == "evaluated"]
        todo = [i for i in ids if statuses.get(i) is None or (retry_failed and statuses[i] == "failed")]
        emit({"event": "start", "total": len(pending) + len(todo), "ids": pending + todo})

        def finish_bench(model_id: str, row: dict, info: dict) -> None:
            emit({"event": "stage", "id": model_id, "stage": "bench"})
            try:
                columns, bench_info = measure_speed(model_id, settings)
            except Exception as error:  # noqa: BLE001 - recorded; the search goes on
                _record_failure(results, outcome, model_id, describe(error), info, emit)
                return
            info = {**info, "bench": bench_info}
            results.put_done(model_id, {**row, **columns}, info)
            _drop_checkpoint(work, model_id)
            outcome.done.append(model_id)
            emit({"event": "finished", "id": model_id, "status": "done", "row": {**row, **columns}})

        for model_id, (row, info) in results.evaluated().items():
            if model_id in pending:
                finish_bench(model_id, row, info)
        sequential = executor == "local" and workers <= 1
        runner = make_executor(executor, workers=workers, address=address,
                               train_threads=settings.train_threads, report=emit if sequential else None)
        with runner if todo else contextlib.nullcontext():
            for result in runner.map(todo, settings, str(work)) if todo else ():
                if result.error is not None:
                    _record_failure(results, outcome, result.id, result.error, result.info, emit)
                elif sequential:
                    finish_bench(result.id, result.row, result.info)
                else:
                    results.put_evaluated(result.id, result.row, result.info)
                    emit({"event": "stage", "id": result.id, "stage": "evaluated"})
        for model_id, (row, info) in results.evaluated().items():
            if model_id in todo:
                finish_bench(model_id, row, info)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _record_failure(results, outcome: SearchReport, model_id: str, error: str, info: dict,
                    emit: Reporter) -> None:
    results.put_failed(model_id, error, info)
    outcome.failed[model_id] = error
    emit({"event": "finished", "id": model_id, "status": "failed", "error": error})


def _drop_checkpoint(work: Path, model_id: str) -> None:
    """The row is committed: the optimiser checkpoint is no longer needed (weights are kept)."""
    (work / f"{model_id}.ckpt.pt").unlink(missing_ok=True)


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


def default_train_threads(workers: int) -> int:
    """Torch threads per training task so that ``workers`` tasks share the cores."""
    return max(1, math.floor((os.cpu_count() or 1) / max(1, workers)))
