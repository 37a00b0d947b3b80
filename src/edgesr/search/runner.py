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
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edgesr.errors import EdgesrError, describe
from edgesr.search.executors import make_executor
from edgesr.search.settings import SearchSettings, only_new_kinds, with_known_recipes
from edgesr.search.store import ResultsStore
from edgesr.progress import Progress, Reporter, ignore
from edgesr.search.task import BENCH_COLUMNS, BENCH_EXTRAS, measure_speed


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
        report: `edgesr.progress` reporter: "start" (``total`` ids, ``values["ids"]``), "stage"
            (``item`` entered ``values["stage"]``: train with ``done``/``total`` steps, eval,
            evaluated, bench) and "finished" (``values``: ``status`` "done" with its ``row``, or
            "failed" with its ``error``).
    Returns:
        a `SearchReport`.
    """
    started = time.perf_counter()
    work = Path(work_dir) if work_dir is not None else default_work_dir(store)
    outcome = SearchReport()
    emit = report or ignore
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
        emit(Progress("search", "start", total=len(pending) + len(todo), values={"ids": pending + todo}))

        def finish_bench(model_id: str, row: dict, info: dict) -> None:
            emit(Progress("search", "stage", model_id, values={"stage": "bench"}))
            try:
                columns, bench_info = measure_speed(model_id, settings)
            except Exception as error:  # noqa: BLE001 - recorded; the search goes on
                _record_failure(results, outcome, model_id, describe(error), info, emit)
                return
            info = {**info, "bench": bench_info}
            results.put_done(model_id, {**row, **columns}, info)
            _drop_checkpoint(work, model_id)
            outcome.done.append(model_id)
            emit(Progress("search", "finished", model_id, values={"status": "done", "row": {**row, **columns}}))

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
                    emit(Progress("search", "stage", result.id, values={"stage": "evaluated"}))
        for model_id, (row, info) in results.evaluated().items():
            if model_id in todo:
                finish_bench(model_id, row, info)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _record_failure(results: ResultsStore, outcome: SearchReport, model_id: str, error: str, info: dict,
                    emit: Reporter) -> None:
    results.put_failed(model_id, error, info)
    outcome.failed[model_id] = error
    emit(Progress("search", "finished", model_id, values={"status": "failed", "error": error}))


def _drop_checkpoint(work: Path, model_id: str) -> None:
    """The row is committed: the optimiser checkpoint is no longer needed (weights are kept)."""
    (work / f"{model_id}.ckpt.pt").unlink(missing_ok=True)
