"""Arrays computed from an attention set and cached beside it, each with its checksum.

`cached(file, shape, fill)` returns the array memory-mapped read-only from `file`, building it
once: `fill(out)` writes straight into a temporary .npy under a lock, its CRC-32 goes into a
`.json` file beside it, then it is renamed into place, so every process on the machine shares
one copy and two processes building it at once leave one good entry. A file that fails its
checksum is removed with a warning and built again; where the folder is not writable (or is
full) the array is built in memory for this process.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib

import numpy as np

from evo import files, integrity


def cached(file: pathlib.Path, shape: tuple, fill, dtype=np.float32, on_build=None) -> np.ndarray:
    """Returns the array at `file`, built with `fill(out)` when absent or damaged (`on_build()` after)."""
    found = _open_derived(file, shape, dtype)
    if found is not None:
        return found
    try:
        with files.locked(file.parent / f".{file.name}.lock"):
            found = _open_derived(file, shape, dtype)   # another process may have built it meanwhile
            if found is None:
                _build_derived(file, shape, dtype, fill)
                if on_build is not None:
                    on_build()
        return _open_derived(file, shape, dtype)
    except OSError:
        out = np.empty(shape, dtype)   # a read-only or full folder: keep it in this process
        fill(out)
        return out


_CHECKED: set[tuple] = set()   # derived files whose checksum this process has verified: (path, inode, mtime)


def _build_derived(file: pathlib.Path, shape: tuple, dtype, fill) -> None:
    """Writes a derived array to `file` through a temporary file, its checksum first, then renames it in."""
    tmp = file.with_name(f".{file.name}.tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(shape))
    fill(out)
    out.flush()
    digest = integrity.checksum(out)
    del out
    files.write_json(_derived_meta(file), {"crc32": digest, "shape": list(shape), "dtype": np.dtype(dtype).str})
    os.replace(tmp, file)


def _derived_meta(file: pathlib.Path) -> pathlib.Path:
    """Returns the checksum file that goes with a derived array."""
    return file.with_suffix(".json")


def _open_derived(file: pathlib.Path, shape: tuple, dtype) -> np.ndarray | None:
    """Returns the derived array at `file` memory-mapped read-only, or None when absent, not as expected or
    failing its checksum (then it is removed with a warning, and built again by the caller)."""
    try:
        found = np.load(file, mmap_mode="r")
        stat = file.stat()
    except (OSError, ValueError):
        return None
    if found.shape != tuple(shape) or found.dtype != np.dtype(dtype):
        return None
    stamp = (str(file), stat.st_ino, stat.st_mtime_ns)
    if stamp in _CHECKED:
        return found
    try:
        expected = json.loads(_derived_meta(file).read_text(encoding="utf-8")).get("crc32")
    except (OSError, ValueError, AttributeError):
        expected = None   # made before checksums, or its checksum file lost: build it again
    if expected != integrity.checksum(found):
        if expected is not None:
            import warnings
            warnings.warn(f"cached array {file} fails its checksum; building it again", stacklevel=3)
        del found
        for stale in (file, _derived_meta(file)):
            with contextlib.suppress(OSError):   # a read-only folder: the caller builds it in memory
                stale.unlink(missing_ok=True)
        return None
    _CHECKED.add(stamp)
    return found


