"""Dataset names -> folders of HR images: resolve, fetch, register, list.

A dataset is a folder of HR images. It can be named three ways, looked up in this order:

1. a name registered with `add` (``edgesr datasets add Set5 /data/Set5``), kept in the cache's
   ``registry.json``; registering a catalog name (or alias) makes it use that folder;
2. a catalog name already fetched into the cache (``edgesr datasets fetch Set5``);
3. any existing folder path that holds images.

Evaluation and training never download on their own: an unfetched catalog name is an error that
says how to fetch it or register a local copy. `fetch` downloads the archive (progress events,
resume, checksum), extracts only the HR images into a temporary folder and renames it into
place, so a dataset folder is either complete or absent.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgesr.data.archive import extract_members, list_members, select_hr
from edgesr.data.cache import datasets_dir, downloads_dir, find_key, load_registry, save_registry
from edgesr.data.catalog import CATALOG, DatasetEntry, Source, catalog_entry, require_entry
from edgesr.data.download import DownloadError, download, file_digest, part_path
from edgesr.errors import EdgesrError
from edgesr.imaging import is_image_path
from edgesr.progress import Reporter

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


@dataclass(frozen=True)
class DatasetStatus:
    """One row of `list_datasets`: status is ``registered``, ``cached`` or ``not fetched``."""

    name: str
    role: str
    status: str
    path: Path | None
    images: int | None
    description: str


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder`` (not recursive, hidden files skipped), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgesrError(f"{folder}: no such folder")
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and is_image_path(p)),
                  key=lambda p: p.name)


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.startswith((".", "~"))


def resolve_dataset(name_or_path: str | os.PathLike) -> Path:
    """The folder of HR images for a registered name, a fetched catalog name or a folder path.

    Never downloads. Raises `EdgesrError` (one line) for an unfetched catalog name (saying how to
    fetch or add it), an unknown name, a registered folder that has gone, or a folder without
    images.

    >>> resolve_dataset("/data/Set5")            # doctest: +SKIP
    PosixPath('/data/Set5')
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if _looks_like_path(text) and path.is_dir():
        return _with_images(path.resolve(), text)
    registry = load_registry()
    entry = catalog_entry(text)
    canonical = entry.name if entry else text
    key = find_key(registry["registered"], canonical)
    if key is not None:
        folder = Path(registry["registered"][key]["path"])
        if not folder.is_dir():
            raise EdgesrError(f"{key}: registered folder {folder} no longer exists; register it again with"
                              f" `edgesr datasets add {key} DIR`")
        return _with_images(folder, key)
    if entry is not None and (datasets_dir() / entry.name).is_dir():
        return _with_images(datasets_dir() / entry.name, entry.name)
    if path.is_dir():
        return _with_images(path.resolve(), text)
    if entry is not None:
        raise EdgesrError(f"{entry.name}: not fetched yet; run `edgesr datasets fetch {entry.name}` or"
                          f" register a local copy with `edgesr datasets add {entry.name} DIR`")
    known = sorted(set(CATALOG) | set(registry["registered"]))
    raise EdgesrError(f"{text}: neither a dataset name ({', '.join(known)}) nor a folder")


def _with_images(folder: Path, label: str) -> Path:
    if not list_images(folder):
        raise EdgesrError(f"{label}: folder {folder} holds no images")
    return folder


def canonical_name(name_or_path: str | os.PathLike) -> str:
    """Display name for results columns: catalog name, registered name, or the folder's name."""
    text = os.fspath(name_or_path)
    entry = catalog_entry(text)
    if entry is not None:
        return entry.name
    key = find_key(load_registry()["registered"], text)
    return key if key is not None else Path(text).expanduser().resolve().name


def add(name: str, folder: str | os.PathLike) -> Path:
    """Register ``folder`` (must hold images) under ``name`` for every later command; returns it.

    A catalog name or alias is stored under its canonical name (``B100`` -> ``BSDS100``), and
    then wins over a fetched copy.
    """
    if not _NAME.fullmatch(name):
        raise EdgesrError(f"{name!r}: dataset names are letters, digits and . _ + - (no spaces or slashes)")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise EdgesrError(f"{path}: no such folder")
    path = path.resolve()
    images = list_images(path)
    if not images:
        raise EdgesrError(f"{path}: folder holds no images (looked for {', '.join(_suffixes())})")
    entry = catalog_entry(name)
    canonical = entry.name if entry else name
    registry = load_registry()
    old = find_key(registry["registered"], canonical)
    if old is not None:
        del registry["registered"][old]
    registry["registered"][canonical] = {"path": str(path), "images": len(images),
                                         "added": time.strftime("%Y-%m-%dT%H:%M:%S")}
    save_registry(registry)
    return path


def _suffixes() -> list[str]:
    from edgesr.imaging import IMAGE_SUFFIXES

    return list(IMAGE_SUFFIXES)


def list_datasets() -> list[DatasetStatus]:
    """Catalog entries and registered names with their status, catalog order first."""
    registry = load_registry()
    rows = []
    for entry in CATALOG.values():
        key = find_key(registry["registered"], entry.name)
        cached = datasets_dir() / entry.name
        if key is not None:
            path, status = Path(registry["registered"][key]["path"]), "registered"
        elif cached.is_dir():
            path, status = cached, "cached"
        elif _partial(entry):
            path, status = _partial(entry), "partial download"
        else:
            path, status = None, "not fetched"
        rows.append(DatasetStatus(entry.name, entry.role, status, path, _count(path), entry.description))
    for key, info in sorted(registry["registered"].items(), key=lambda item: item[0].casefold()):
        if catalog_entry(key) is None:
            path = Path(info["path"])
            rows.append(DatasetStatus(key, "user", "registered", path, _count(path), ""))
    return rows


def _count(path: Path | None) -> int | None:
    return len(list_images(path)) if path is not None and path.is_dir() else None


def _partial(entry: DatasetEntry) -> Path | None:
    """The ``.part`` file of an interrupted download of one of the entry's sources, if any."""
    parts = (part_path(downloads_dir() / source.filename) for source in entry.sources)
    return next((part for part in parts if part.exists()), None)


def fetch(name: str | DatasetEntry, progress: Reporter | None = None, force: bool = False, retries: int = 2,
          timeout: float = 60.0) -> Path:
    """Download and install a catalog dataset into the cache; returns its folder of HR images.

    Already cached: returns at once (``force=True`` fetches again). Sources are tried in order;
    each download resumes a ``.part`` file left by an interrupted run and is checked against the
    catalog's checksum. Unknown checksums are recorded (sha256) in ``registry.json``. Raises one
    `EdgesrError` line with each source's failure when none works; nothing half-extracted is
    left behind. ``progress``: the download's `edgesr.progress` events.
    """
    entry = name if isinstance(name, DatasetEntry) else require_entry(name)
    target = datasets_dir() / entry.name
    if target.is_dir() and not force:
        return target
    failures = []
    for index, source in enumerate(entry.sources):
        try:
            folder = _fetch_source(entry, source, target, progress, retries, timeout)
        except EdgesrError as error:
            failures.append(str(error))
            continue
        for earlier in entry.sources[:index]:  # partial downloads from sources that failed
            if not _needed_by_unfetched(earlier.url, entry.name):
                part_path(downloads_dir() / earlier.filename).unlink(missing_ok=True)
        return folder
    raise EdgesrError(f"{entry.name}: fetch failed: " + " | ".join(failures))


def _fetch_source(entry: DatasetEntry, source: Source, target: Path, progress: Reporter | None, retries: int,
                  timeout: float) -> Path:
    archive = downloads_dir() / source.filename
    if archive.is_file():
        digest = file_digest(archive)
        if source.sha256 is not None and digest != source.sha256:
            archive.unlink()  # a stale or foreign file under the same name: fetch it again
    if not archive.is_file():
        digest = download(source.url, archive, sha256=source.sha256, md5=source.md5, progress=progress,
                          retries=retries, timeout=timeout)
    try:
        members = select_hr(list_members(archive), source.subdir, source.patterns, archive)
        _install(archive, members, target)
    except EdgesrError:
        archive.unlink(missing_ok=True)  # corrupt or unusable: the next fetch downloads it afresh
        raise
    registry = load_registry()
    registry["fetched"][entry.name] = {"url": source.url, "sha256": digest, "images": len(members),
                                       "checksum_known": source.sha256 is not None or source.md5 is not None,
                                       "fetched": time.strftime("%Y-%m-%dT%H:%M:%S")}
    save_registry(registry)
    if not _needed_by_unfetched(source.url, entry.name):
        archive.unlink(missing_ok=True)
    return target


def _install(archive: Path, members: list, target: Path) -> None:
    """Extract into a temporary sibling folder, then rename it to ``target`` (all or nothing)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        extract_members(archive, members, tmp)
        if target.exists():  # --force: swap the old copy out only once the new one is complete
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _needed_by_unfetched(url: str, fetched: str) -> bool:
    """True when another not-yet-fetched catalog dataset uses the same archive (keep it)."""
    return any(entry.name != fetched and not (datasets_dir() / entry.name).is_dir()
               and any(s.url == url for s in entry.sources[:1])
               for entry in CATALOG.values())


def pending_download(name: str | DatasetEntry) -> Path | None:
    """The ``.part`` file an interrupted fetch of this dataset left (resumed by the next fetch)."""
    return _partial(name if isinstance(name, DatasetEntry) else require_entry(name))


__all__ = ["DatasetStatus", "DownloadError", "add", "canonical_name", "fetch", "list_datasets", "list_images",
           "pending_download", "resolve_dataset"]
