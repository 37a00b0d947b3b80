"""Where datasets live on disk, and the registry of user-added folders and fetched archives.

Layout under `cache_dir()` (``$EDGESR_DATA``, else ``$EDGESR_CACHE``, else the platform's user
cache dir + ``edgesr``)::

    datasets/<Name>/       HR images of a fetched catalog dataset (only those, flat)
    downloads/<archive>    archives while (or, when shared by unfetched sets, after) fetching;
                           ``<archive>.part`` is an interrupted download, resumed on the next fetch
    official/<id>.model    official weight files fetched on request (`edgesr.official`)
    registry.json          {"registered": {name: {"path": ...}}, "fetched": {name: {...}}}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgesr.atomic import write_text_atomic
from edgesr.errors import EdgesrError
from edgesr.paths import cache_root

ENV_VAR = "EDGESR_DATA"


def cache_dir() -> Path:
    """edgesr's data folder: ``$EDGESR_DATA`` when set, else the cache root (`edgesr.paths`:
    ``$EDGESR_CACHE``, else the user cache dir + ``edgesr``), which also holds the kernels."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else cache_root()


def datasets_dir() -> Path:
    """Folder holding one sub-folder of HR images per fetched catalog dataset."""
    return cache_dir() / "datasets"


def downloads_dir() -> Path:
    """Folder for archives being downloaded (``.part``) or kept for another dataset."""
    return cache_dir() / "downloads"


def registry_path() -> Path:
    return cache_dir() / "registry.json"


def load_registry() -> dict[str, Any]:
    """The registry as a dict with ``registered`` and ``fetched`` maps (empty when absent)."""
    path = registry_path()
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise EdgesrError(f"{path}: unreadable dataset registry ({error}); fix or delete it") from None
        if not isinstance(data, dict):
            raise EdgesrError(f"{path}: dataset registry is not a JSON object; fix or delete it")
    data.setdefault("registered", {})
    data.setdefault("fetched", {})
    return data


def save_registry(data: dict[str, Any]) -> None:
    """Write the registry atomically (a crash leaves the old or the new file, never half)."""
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def find_key(mapping: dict[str, Any], name: str) -> str | None:
    """The key of ``mapping`` equal to ``name`` ignoring case, or ``None``."""
    key = name.casefold()
    return next((k for k in mapping if k.casefold() == key), None)
