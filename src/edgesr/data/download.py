"""HTTP(S) download with progress events, resume of interrupted transfers, and checksums.

Bytes go to ``<dest>.part``; only a complete, verified file is renamed to ``dest``. After an
interruption (dropped connection, timeout, Ctrl-C) the ``.part`` file stays and the next call
asks the server for the rest with an HTTP ``Range`` request; a server that ignores ``Range``
(answers 200) gets a fresh download. A checksum mismatch deletes the ``.part`` file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from edgesr.errors import EdgesrError
from edgesr.progress import Progress, Reporter, ignore

USER_AGENT = "edgesr-datasets/0.1 (python urllib)"
CHUNK = 1 << 20
# Permanent answers: retrying the same URL will not help.
_FATAL_STATUS = {400, 401, 403, 404, 405, 410, 451}


class DownloadError(EdgesrError):
    """A download that failed; ``resumable`` when a ``.part`` file was kept for the next try."""

    def __init__(self, message: str, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable


def part_path(dest: Path) -> Path:
    """Where the bytes of an unfinished download of ``dest`` are kept."""
    return dest.with_name(dest.name + ".part")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None, md5: str | None = None,
             progress: Reporter | None = None, retries: int = 2, timeout: float = 60.0,
             backoff: float = 1.0) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify it, return its sha256.

    Args:
        sha256, md5: expected hex digests; a mismatch deletes the partial file and raises.
        progress: `edgesr.progress` reporter: "start" (``done`` bytes already there of ``total``)
            and "advance" events (``units`` bytes) for each attempt.
        retries: further attempts after a transient failure (each resumes where the last stopped).
        backoff: seconds before the first retry, doubled for each further one.
    Raises:
        DownloadError (an `EdgesrError`): one line naming the URL; ``resumable`` is true when a
        ``.part`` file was kept for a later call to continue.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    attempt = 0
    while True:
        try:
            _transfer(url, part, progress=progress or ignore, timeout=timeout)
            break
        except _Transient as error:
            if attempt >= retries:
                size = part.stat().st_size if part.exists() else 0
                kept = (f"; {size} bytes kept in {part.name}, run the same command again to resume"
                        if size else "")
                what = "interrupted" if size else "failed"
                raise DownloadError(f"{url}: download {what} ({error}){kept}", resumable=size > 0) from None
            time.sleep(backoff * 2**attempt)
            attempt += 1
    digest = file_digest(part, "sha256")
    checks = [("sha256", sha256, digest)]
    if md5 is not None:
        checks.append(("md5", md5, file_digest(part, "md5")))
    for algorithm, expected, actual in checks:
        if expected is not None and actual != expected.lower():
            part.unlink()
            raise DownloadError(f"{url}: {algorithm} mismatch (expected {expected}, got {actual}); the"
                                " download is corrupt or the file changed upstream, deleted it")
    os.replace(part, dest)
    return digest


class _Transient(Exception):
    """A failure worth retrying (network, timeout, truncated body, 5xx)."""


def _transfer(url: str, part: Path, *, progress: Reporter, timeout: float) -> None:
    """One attempt: append to ``part`` from its current size, or start over when needed."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            total = _content_range_total(error.headers.get("Content-Range", ""))
            if total == offset:  # the .part file already holds the whole file
                return
            part.unlink()
            raise _Transient("server refused to resume; starting over") from None
        if error.code in _FATAL_STATUS:
            if part.exists():
                part.unlink()
            raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
        raise _Transient(f"HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise _Transient(str(reason) or type(error).__name__) from None
    with response:
        status = getattr(response, "status", 200)
        length = response.headers.get("Content-Length")
        resumed = _content_range_start(response.headers.get("Content-Range", "")) == offset
        if offset and status == 206 and resumed:
            mode = "ab"
            total = offset + int(length) if length is not None else None
        else:  # no resume: the server sent the whole file
            mode, offset = "wb", 0
            total = int(length) if length is not None else None
        written = _copy(response, part, mode, offset, total, url, progress)
    if total is not None and offset + written < total:
        raise _Transient(f"connection closed after {offset + written} of {total} bytes")


def _copy(response, part: Path, mode: str, offset: int, total: int | None, url: str,
          progress: Reporter) -> int:
    written = 0
    name = part.name[:-5]
    progress(Progress("download", "start", name, done=offset, total=total))
    with part.open(mode) as handle:
        while True:
            try:
                block = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as error:
                handle.flush()
                lost = f"connection lost after {offset + written} bytes ({type(error).__name__})"
                raise _Transient(lost) from None
            if not block:
                break
            handle.write(block)
            written += len(block)
            progress(Progress("download", "advance", name, units=len(block), done=offset + written, total=total))
    return written


def _content_range_start(value: str) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", value)
    return int(match.group(1)) if match else None


def _content_range_total(value: str) -> int | None:
    match = re.match(r"\s*bytes\s+(?:\*|\d+-\d+)/(\d+)", value)
    return int(match.group(1)) if match else None
