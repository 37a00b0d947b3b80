"""Atomic file output: write to a temporary file beside the target, then rename over it.

A crash or Ctrl-C leaves either the old file or the complete new one, never a partial file.
Temporary files are named ``.edgesr-<pid>-<random>.part<suffix>``: recognisably ours, short
enough for any legal target name, and carrying the writer's pid so that a later run writing to
the same folder can remove what a killed run (kill -9, power loss) left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from edgesr.errors import EdgesrError

#: Prefix of every temporary file edgesr writes.
TEMP_PREFIX = ".edgesr-"

#: Longest target suffix kept in the temporary name (writers pick formats from it: .png, .mp4).
MAX_TEMP_SUFFIX = 16

#: Errors of the writing side that a user can fix (space, permissions, read-only disk).
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}

# Read once: os.umask can only be read by setting it, which would race with other threads.
_UMASK = os.umask(0)
os.umask(_UMASK)
# This process started no later than this: temporaries older than it belong to earlier runs.
_STARTED = time.time()
_swept: set[Path] = set()
_sweep_lock = threading.Lock()


def temp_name(target: Path) -> str:
    """The temporary file name for ``target``: under 50 characters whatever the target's."""
    suffix = target.suffix if len(target.suffix) <= MAX_TEMP_SUFFIX else ""
    return f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.part{suffix}"


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of edgesr's temporaries."""
    return name.startswith(TEMP_PREFIX) and ".part" in name


def _writer_pid(name: str) -> int | None:
    try:
        return int(name[len(TEMP_PREFIX):].split("-", 1)[0])
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove edgesr temporaries in ``folder`` left by runs that are gone: older than this process
    and written by a process that no longer exists. Returns what was removed."""
    removed = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not is_temp_name(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            pid = _writer_pid(entry.name)
            if pid == os.getpid() or (pid is not None and _alive(pid)):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < _STARTED:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _sweep_once(folder: Path) -> None:
    """`remove_stale_temporaries` the first time this process writes into ``folder``."""
    key = folder.resolve()
    with _sweep_lock:
        if key in _swept:
            return
        _swept.add(key)
    remove_stale_temporaries(key)


def _create_temp(target: Path) -> Path:
    folder = target.parent
    if target.is_dir():
        raise EdgesrError(f"{target}: is a folder; give a file name")
    if not folder.is_dir():
        raise EdgesrError(f"{target}: folder {folder} does not exist")
    _sweep_once(folder)
    tmp = folder / temp_name(target)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as error:
        raise EdgesrError(f"{target}: cannot write in {folder} ({error.strerror})") from None
    return tmp


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to ``target``.

    The temporary name keeps the target's suffix so that writers that pick a format from the
    extension (Pillow, safetensors, PyAV) behave as for the final name. A full disk, a
    read-only folder or a missing folder is an `EdgesrError` naming the target; the temporary
    file is removed on every way out (Ctrl-C and SIGTERM included).
    """
    target = Path(target)
    tmp = _create_temp(target)
    try:
        yield tmp
        # After writing: some writers (safetensors) replace the file and so its mode.
        os.chmod(tmp, 0o666 & ~_UMASK)  # outputs get the usual permissions, not mkstemp's 0600
        os.replace(tmp, target)
    except OSError as error:
        if error.errno not in WRITE_ERRNOS and not isinstance(error, IsADirectoryError):
            raise
        raise EdgesrError(f"{target}: cannot write ({error.strerror})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes_atomic(target, text.encode("utf-8"))
