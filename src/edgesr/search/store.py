"""The results store: one SQLite file, one row per model id, written only when complete.

SQLite because it is embedded (no server), every commit is atomic and durable, and a process
killed at any instant leaves the last committed state (WAL journal). Rows are keyed by id
(PRIMARY KEY), so a rerun replaces rather than duplicates. The store also keeps the settings
that define its numbers (datasets, training recipe, bench size); a run with other settings is
refused, so one store never mixes incomparable rows.

Schema::

    meta(key TEXT PRIMARY KEY, value TEXT)              -- "settings": JSON
    results(id TEXT PRIMARY KEY, status 'evaluated'|'done'|'failed',
            row TEXT,        -- JSON {column: number}, the paper's column names
                             -- ('evaluated': quality only, speed still to measure)
            info TEXT,       -- JSON: weights, backend, threads, stage seconds, versions
            error TEXT, attempts INTEGER, updated TEXT)  -- updated: UTC ISO time

>>> with ResultsStore("search.sqlite") as store:        # doctest: +SKIP
...     store.table()["eSR-TM_s2_K3_C1"]["psnr_Set5"]
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from edgesr.errors import EdgesrError

SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('evaluated', 'done', 'failed')),
    row TEXT,
    info TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    updated TEXT NOT NULL
);
"""


def is_sqlite_file(path: str | os.PathLike) -> bool:
    """True when ``path`` starts with the SQLite header."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


class ResultsStore:
    """A search's results in one SQLite file (created on first use).

    Only the search's driver process writes; workers return rows to it. ``readonly`` opens an
    existing store without creating or changing anything (for export and plots).
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise EdgesrError(f"{self.path}: no such results store")
            if not is_sqlite_file(self.path):
                raise EdgesrError(f"{self.path}: not a results store (SQLite file)")
            uri = f"file:{self.path.resolve()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True)
            self._check_schema()
            return
        if self.path.exists() and not is_sqlite_file(self.path):
            raise EdgesrError(f"{self.path}: exists and is not a results store; choose another --store")
        new = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._writing():
                self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error, EdgesrError) as error:
            if new:  # an empty file would block the next run ("not a results store")
                self._remove_files()
            message = str(error) if isinstance(error, EdgesrError) else f"{self.path}: cannot open the results store ({error})"
            raise EdgesrError(message) from None

    def _remove_files(self) -> None:
        if getattr(self, "_db", None) is not None:
            self._db.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One transaction; a full disk or read-only file is an `EdgesrError` naming the store."""
        try:
            with self._db:
                yield
        except sqlite3.OperationalError as error:
            raise EdgesrError(f"{self.path}: cannot write the results store ({error})") from None

    def _check_schema(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"meta", "results"} <= tables:
            raise EdgesrError(f"{self.path}: an SQLite file but not an edgesr results store")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- settings ------------------------------------------------------------------------------

    def settings(self) -> dict | None:
        """The settings the store's rows were made with (None for a new store)."""
        found = self._db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
        return json.loads(found[0]) if found else None

    def replace_settings(self, settings: dict) -> None:
        """Record ``settings`` over the old ones (the caller checked that rows still compare)."""
        with self._writing():
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('settings', ?)",
                             (json.dumps(settings, sort_keys=True),))

    def bind_settings(self, settings: dict) -> None:
        """Record ``settings`` in a new store, or check they equal the recorded ones.

        Raises `EdgesrError` naming the differing keys: rows made otherwise would not compare.
        """
        known = self.settings()
        if known is None:
            with self._writing():
                self._db.execute("INSERT INTO meta (key, value) VALUES ('settings', ?)",
                                 (json.dumps(settings, sort_keys=True),))
            return
        changed = sorted(k for k in set(known) | set(settings) if known.get(k) != settings.get(k))
        if changed:
            detail = "; ".join(f"{k}: store {known.get(k)!r}, now {settings.get(k)!r}" for k in changed)
            raise EdgesrError(f"{self.path}: made with other settings ({detail}); use another --store")

    # --- rows ----------------------------------------------------------------------------------

    def statuses(self) -> dict[str, str]:
        """``{id: "evaluated" | "done" | "failed"}`` for every id recorded."""
        return dict(self._db.execute("SELECT id, status FROM results ORDER BY rowid"))

    def put_done(self, model_id: str, row: dict, info: dict) -> None:
        """Record a complete row (replaces a failure or an older row of the same id)."""
        self._put(model_id, "done", json.dumps(row), json.dumps(info, default=str), None)

    def put_evaluated(self, model_id: str, row: dict, info: dict) -> None:
        """Record quality columns whose speed is still to be measured (not exported)."""
        self._put(model_id, "evaluated", json.dumps(row), json.dumps(info, default=str), None)

    def evaluated(self) -> dict[str, tuple[dict, dict]]:
        """``{id: (row, info)}`` of the ids evaluated but not yet benched."""
        query = "SELECT id, row, info FROM results WHERE status = 'evaluated' ORDER BY rowid"
        return {i: (json.loads(r), json.loads(f)) for i, r, f in self._db.execute(query)}

    def put_failed(self, model_id: str, error: str, info: dict | None = None) -> None:
        """Record that ``model_id`` failed with ``error`` (a done row is never downgraded)."""
        if self.statuses().get(model_id) == "done":
            return
        self._put(model_id, "failed", None, json.dumps(info or {}, default=str), error)

    def _put(self, model_id: str, status: str, row: str | None, info: str, error: str | None) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._writing():
            self._db.execute(
                "INSERT INTO results (id, status, row, info, error, attempts, updated)"
                " VALUES (?, ?, ?, ?, ?, 1, ?)"
                " ON CONFLICT(id) DO UPDATE SET status = excluded.status, row = excluded.row,"
                " info = excluded.info, error = excluded.error, attempts = results.attempts + 1,"
                " updated = excluded.updated",
                (model_id, status, row, info, error, now))

    def table(self) -> dict[str, dict[str, float]]:
        """Done rows as ``{id: {column: value}}`` (the paper's table format), in insertion order."""
        query = "SELECT id, row FROM results WHERE status = 'done' ORDER BY rowid"
        return {model_id: json.loads(row) for model_id, row in self._db.execute(query)}

    def failures(self) -> dict[str, str]:
        """``{id: error}`` of the ids whose last attempt failed."""
        query = "SELECT id, error FROM results WHERE status = 'failed' ORDER BY rowid"
        return dict(self._db.execute(query))

    def record(self, model_id: str) -> dict | None:
        """Everything stored for one id: status, row, info, error, attempts, updated."""
        found = self._db.execute("SELECT status, row, info, error, attempts, updated FROM results"
                                 " WHERE id = ?", (model_id,)).fetchone()
        if found is None:
            return None
        status, row, info, error, attempts, updated = found
        return {"id": model_id, "status": status, "row": json.loads(row) if row else None,
                "info": json.loads(info) if info else {}, "error": error, "attempts": attempts,
                "updated": updated}


def export_store(store: str | os.PathLike, path: str | os.PathLike) -> tuple[Path, int]:
    """Write a store's done rows in the paper's format (``.json`` or ``.csv``); returns (path, rows)."""
    from edgesr.results import write_table

    with ResultsStore(store, readonly=True) as opened:
        table = opened.table()
    return write_table(table, path), len(table)
