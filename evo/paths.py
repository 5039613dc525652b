"""Where headcode keeps its caches (converted models, attention sets)."""

from __future__ import annotations

import os
import pathlib

import platformdirs

ENV_VAR = "HEADCODE_CACHE"


def cache_dir() -> pathlib.Path:
    """Returns the cache root ($HEADCODE_CACHE or the user cache dir), created if absent."""
    root = os.environ.get(ENV_VAR) or platformdirs.user_cache_dir("headcode")
    path = pathlib.Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
