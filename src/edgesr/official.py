"""The paper's official weight files by name: download on request, verify, find in the cache.

The 1185 ``<id>.model`` files of the edge-SR release are GPL-3 and belong to their authors, so
edgesr never bundles them: it ships only their manifest (id, size, sha256 of every file, in
``weights/official.json``) and downloads a file when the user asks (`fetch_official`, the CLI's
``edgesr weights fetch official``). Files land in ``<cache>/official/<id>.model``; a download
resumes a ``.part`` file with an HTTP Range request and is renamed into place only once its
sha256 matches the manifest, so the cache never holds a truncated or corrupted file.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgesr.data.cache import cache_dir
from edgesr.data.download import DownloadError, download, file_digest, part_path
from edgesr.errors import EdgesrError
from edgesr.models import ModelSpec
from edgesr.weights import SHIPPED_DIR

#: The official repository at the commit whose ``model-files/`` the manifest describes (pinned:
#: a branch could change a file under the same name).
OFFICIAL_URL = "https://raw.githubusercontent.com/pnavarre/eSR/20b724c25703a6f96f9db11143de45ab2bc7526b"
#: Environment variable that points downloads at a mirror with the same layout.
URL_ENV = "EDGESR_OFFICIAL_URL"
MANIFEST_PATH = SHIPPED_DIR / "official.json"
LICENSE_NOTE = ("The official edge-SR weights (Navarrete Michelini, Lu, Jiang; github.com/pnavarre/eSR)"
                " are licensed GPL-3.0 by their authors; edgesr downloads them at your request and does"
                " not bundle them. Their use is subject to that license.")


@dataclass(frozen=True)
class OfficialFile:
    """One official file as the manifest records it."""

    model_id: str
    size: int
    sha256: str


@functools.lru_cache(maxsize=1)
def official_manifest() -> dict[str, OfficialFile]:
    """Every official file by model id (1185 of them), from the manifest shipped with edgesr."""
    try:
        data = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
        return {i: OfficialFile(i, int(size), str(digest)) for i, (size, digest) in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise EdgesrError(f"{MANIFEST_PATH}: unreadable official-weights manifest ({error})") from None


def official_dir() -> Path:
    """Where fetched official files live: ``<edgesr cache>/official``."""
    return cache_dir() / "official"


def official_path(model_id: str) -> Path:
    """The cache path of ``model_id``'s official file (whether or not it was fetched)."""
    return official_dir() / f"{ModelSpec.parse(model_id).id}.model"


def base_url(override: str | None = None) -> str:
    """The download root: ``override``, else ``$EDGESR_OFFICIAL_URL``, else the official repository."""
    return (override or os.environ.get(URL_ENV) or OFFICIAL_URL).rstrip("/")


def file_url(model_id: str, base: str | None = None) -> str:
    """``<base>/model-files/<id>.model``, the official repository's layout."""
    return f"{base_url(base)}/model-files/{model_id}.model"


def manifest_entry(model_id: str) -> OfficialFile:
    """The manifest's entry for an id; an id outside the paper's grid is a clear error."""
    model_id = ModelSpec.parse(model_id).id
    entry = official_manifest().get(model_id)
    if entry is None:
        raise EdgesrError(f"{model_id}: not one of the paper's 1185 official models")
    return entry


def check_file(path: Path, entry: OfficialFile) -> str | None:
    """What is wrong with a cached file (wrong size, wrong sha256), or None when it is intact."""
    size = path.stat().st_size
    if size != entry.size:
        return f"{size} bytes, the official file has {entry.size}"
    digest = file_digest(path)
    if digest != entry.sha256:
        return f"sha256 {digest}, the official file has {entry.sha256}"
    return None


def official_weights(model_id: str) -> Path:
    """The verified cached official file of ``model_id``, for ``--official``.

    A file that was never fetched, or one changed since, is an `EdgesrError` that says how to
    fetch it.
    """
    entry = manifest_entry(model_id)
    path = official_path(entry.model_id)
    fetch = f"run: edgesr weights fetch official {entry.model_id}"
    if not path.is_file():
        raise EdgesrError(f"{entry.model_id}: official weights not downloaded ({path} is missing); {fetch}")
    problem = check_file(path, entry)
    if problem is not None:
        raise EdgesrError(f"{path}: not the official file ({problem}); {fetch}")
    return path


def official_weights_map(model_ids: Iterable[str]) -> dict[str, Path]:
    """`official_weights` of several ids; the ids never fetched are named in one error."""
    ids = list(dict.fromkeys(manifest_entry(i).model_id for i in model_ids))
    missing = [i for i in ids if not official_path(i).is_file()]
    if len(missing) > 1:
        shown = " ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise EdgesrError(f"official weights not downloaded for {len(missing)} models; run: edgesr weights"
                          f" fetch official {shown}")
    return {i: official_weights(i) for i in ids}


def official_files(model_ids: Iterable[str | None], weights: str | os.PathLike | None = None) -> list[Path]:
    """What ``--official`` loads: each id's verified cached file, in order.

    ``weights`` is the ``--weights`` given alongside, refused: the two name different files.
    """
    if weights is not None:
        raise EdgesrError("pass --weights or --official, not both")
    ids = [ModelSpec.parse(i).id for i in model_ids if i]
    if not ids:
        raise EdgesrError("--official needs model ids (-m ID, or ID ...)")
    files = official_weights_map(ids)
    return [files[i] for i in ids]


@dataclass
class FetchReport:
    """What `fetch_official` did: ids downloaded, ids already cached and intact, failures."""

    fetched: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes_downloaded: int = 0


def fetch_official(model_ids: Sequence[str] | None = None, *, base: str | None = None, retries: int = 2,
                   timeout: float = 60.0, backoff: float = 1.0,
                   on_file: Callable[[str, str], None] | None = None) -> FetchReport:
    """Download official files into the cache; ``model_ids=None`` fetches all 1185.

    Intact cached files are kept; a cached file that fails its check is deleted and fetched
    again. Each download resumes its ``.part`` file and is verified against the manifest before
    it is renamed into place; a failed file is reported and the others go on. ``on_file(id,
    status)`` is called after each id with "cached", "fetched" or "failed".
    """
    entries = ([manifest_entry(i) for i in model_ids] if model_ids is not None
               else list(official_manifest().values()))
    folder = official_dir()
    folder.mkdir(parents=True, exist_ok=True)
    report = FetchReport()
    for entry in dict.fromkeys(entries):
        status = _fetch_one(entry, folder / f"{entry.model_id}.model", base, report,
                            retries=retries, timeout=timeout, backoff=backoff)
        if on_file is not None:
            on_file(entry.model_id, status)
    return report


def _fetch_one(entry: OfficialFile, dest: Path, base: str | None, report: FetchReport, *, retries: int,
               timeout: float, backoff: float) -> str:
    if dest.is_file():
        if check_file(dest, entry) is None:
            report.cached.append(entry.model_id)
            return "cached"
        dest.unlink()  # changed or damaged since it was fetched: fetch it again
    part = part_path(dest)
    if part.is_file() and part.stat().st_size > entry.size:
        part.unlink()  # longer than the real file: it cannot be a prefix of it
    before = part.stat().st_size if part.is_file() else 0
    url = file_url(entry.model_id, base)
    try:
        download(url, dest, sha256=entry.sha256, retries=retries, timeout=timeout,
                 backoff=backoff)
    except DownloadError as error:
        report.failed[entry.model_id] = str(error)
        return "failed"
    report.fetched.append(entry.model_id)
    report.bytes_downloaded += entry.size - before
    return "fetched"


def build_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of a folder holding the official ``<id>.model`` files (for maintainers)."""
    folder = Path(folder)
    files = {}
    for model_id in sorted(p.stem for p in folder.glob("*.model")):
        path = folder / f"{model_id}.model"
        files[ModelSpec.parse(model_id).id] = [path.stat().st_size, file_digest(path)]
    return {"source": OFFICIAL_URL, "layout": "<base>/model-files/<id>.model", "license": "GPL-3.0",
            "files": files}
