"""Where a search's prepare tasks (train + evaluate one id) run.

Every executor maps `edgesr.search.task.attempt_prepare` over ids and yields each `Outcome`
as soon as it finishes; the driver alone writes the store. Three kinds:

* ``local`` with 1 worker: in this process, in order (progress shows each training step).
* ``local`` with N workers: a ``spawn`` process pool (fork is unsafe once torch's thread
  pools exist); workers ignore Ctrl-C (the driver stops them) and die with the driver.
* ``ray``: each id a Ray task on the cluster at ``address`` (or a local instance with N CPUs);
  needs the ``ray`` extra, edgesr installed on the workers and shared work/data folders.

>>> with make_executor("local") as ex:                               # doctest: +SKIP
...     outcomes = list(ex.map(["eSR-MAX_s2_K3_C1"], settings, "work"))
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from edgesr.errors import EdgesrError
from edgesr.search.settings import SearchSettings
from edgesr.progress import Reporter
from edgesr.search.task import Outcome, attempt_prepare, interruptible


class LocalExecutor:
    """Prepare tasks one after another in this process."""

    def __init__(self, report: Reporter | None = None) -> None:
        self.report = report

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, ids: list[str], settings: SearchSettings, work_dir: str) -> Iterator[Outcome]:
        with interruptible():
            for model_id in ids:
                yield attempt_prepare(model_id, settings, work_dir, self.report)


def _worker_init() -> None:
    """Pool workers: leave Ctrl-C to the driver, and die with it (Linux) rather than train on
    as orphans beside a resumed search."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _attempt(model_id: str, settings: SearchSettings, work_dir: str) -> Outcome:
    return attempt_prepare(model_id, settings, work_dir)


class PoolExecutor:
    """Prepare tasks in a pool of ``workers`` spawned processes, results as they finish.

    A worker that dies (e.g. killed for memory) stops the search with an error rather than
    blaming the ids it was running; rerunning resumes.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise EdgesrError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> PoolExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            # Stop running tasks too (Ctrl-C, errors): their checkpoints resume them next time.
            processes = list(getattr(self.pool, "_processes", {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.kill()
            self.pool = None

    def map(self, ids: list[str], settings: SearchSettings, work_dir: str) -> Iterator[Outcome]:
        if not ids:
            return
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(min(self.workers, len(ids)), mp_context=context,
                                        initializer=_worker_init)
        futures = {self.pool.submit(_attempt, i, settings, work_dir): i for i in ids}
        for future in as_completed(futures):
            try:
                yield future.result()
            except BrokenProcessPool:
                raise EdgesrError(f"a worker process died while preparing {futures[future]} (out of"
                                  " memory?); rerun the same command to resume") from None
        self.pool.shutdown()
        self.pool = None


class RayExecutor:
    """Each prepare task a Ray task; ``address`` joins a cluster, None starts a local instance."""

    def __init__(self, address: str | None = None, workers: int = 1, train_threads: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise EdgesrError("--executor ray needs Ray: pip install 'edgesr[ray]'") from None
        self.ray = ray
        self.address = address
        self.workers = workers
        self.cpus_per_task = train_threads or 1
        self.started = False

    def __enter__(self) -> RayExecutor:
        ray = self.ray
        if not ray.is_initialized():
            options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            if self.address is None:
                options["num_cpus"] = max(self.workers, self.cpus_per_task)
            try:
                ray.init(address=self.address, **options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise EdgesrError(f"ray: cannot start or join {self.address or 'a local instance'} ({first})") from None
            self.started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False

    def map(self, ids: list[str], settings: SearchSettings, work_dir: str) -> Iterator[Outcome]:
        ray = self.ray
        remote = ray.remote(num_cpus=self.cpus_per_task, max_retries=0)(_attempt)
        running = {remote.remote(model_id, settings, work_dir): model_id for model_id in ids}
        try:
            while running:
                finished, _ = ray.wait(list(running), num_returns=1)
                for ref in finished:
                    model_id = running.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as error:  # the task's process died
                        yield Outcome(model_id, None, {}, f"ray: {type(error).__name__}: {str(error).splitlines()[0]}")
        finally:
            for ref in running:
                ray.cancel(ref, force=True)


def make_executor(kind: str = "local", workers: int = 1, address: str | None = None,
                  train_threads: int | None = None, report: Reporter | None = None):
    """The executor for ``--executor`` / ``--workers`` / ``--address``."""
    if kind == "local":
        if address is not None:
            raise EdgesrError("--address is for --executor ray")
        return LocalExecutor(report) if workers <= 1 else PoolExecutor(workers)
    if kind == "ray":
        return RayExecutor(address, workers, train_threads)
    raise EdgesrError(f"unknown executor {kind!r}; choose local or ray")
