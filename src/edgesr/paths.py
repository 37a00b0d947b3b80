"""edgesr's cache root, the one place that decides it: ``$EDGESR_CACHE``, else the platform's
per-user cache folder + ``edgesr``. Compiled kernels, exported graphs, datasets and fetched
weights live under it (datasets and weights can move on their own with ``$EDGESR_DATA``, see
`edgesr.data.cache`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE_ENV_VAR = "EDGESR_CACHE"


def user_cache_dir() -> Path:
    """The platform's per-user cache folder (XDG on Linux, ~/Library/Caches, %LOCALAPPDATA%)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return Path(base) if base else Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    base = os.environ.get("XDG_CACHE_HOME")
    return Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"


def cache_root() -> Path:
    """``$EDGESR_CACHE`` when set, else `user_cache_dir()` / ``edgesr``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else user_cache_dir() / "edgesr"
