"""One exception type for every user-facing failure, and one rule for failures of one file.

The CLI prints ``str(error)`` as a single line and exits non-zero, so messages name the file
(or id) and the problem, and never carry a traceback.

Batches (upscale, eval, training data, explain) follow one rule, `per_file`: any exception
while reading, computing or writing one input (KeyboardInterrupt and SystemExit excepted)
becomes one line naming the file and the cause; the batch goes on. The traceback is logged at
DEBUG level on the ``edgesr`` logger, which ``edgesr --debug`` shows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
from collections.abc import Iterator
from pathlib import Path

#: The library's logger: per-file warnings (WARNING) and failure tracebacks (DEBUG).
log = logging.getLogger("edgesr")


class EdgesrError(Exception):
    """A problem with the user's input: bad id, unreadable image, mismatched weights, ..."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C (temporary files go)."""


def describe(error: BaseException) -> str:
    """One line for any exception: an `EdgesrError`'s message, an OSError's reason, else the
    type, the first line of the message and the place it was raised."""
    if isinstance(error, EdgesrError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}{where}" if text else f"{type(error).__name__}{where}"


def file_failure(path: str | os.PathLike, error: BaseException) -> str:
    """The one line for a failed file: the file, then the cause (not repeating the name)."""
    log.debug("%s failed", path, exc_info=error)
    cause = describe(error)
    name = str(path)
    return cause if cause.startswith(name) else f"{name}: {cause}"


@contextlib.contextmanager
def per_file(path: str | os.PathLike, errors: list[str]) -> Iterator[None]:
    """Run one file's work; a failure (not Ctrl-C/SIGTERM/exit) is appended to ``errors`` as one
    line and swallowed, so the caller's loop goes on with the next file."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - the one place a file's failure is contained
        errors.append(file_failure(path, error))
