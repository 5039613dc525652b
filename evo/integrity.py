"""Checksums for what headcode caches on disk, and the error a damaged cache raises.

A cache file carries a CRC-32 of its data, written when it is made and compared when it
is read: a flipped byte, a copy cut short or a sync tool's half-written file is caught
before a single score is computed from it. CRC-32 runs at memory speed (about 1 GB/s).
"""

from __future__ import annotations

import zlib

import numpy as np

from evo.errors import UserError


class CorruptCache(UserError):
    """A cache file whose bytes no longer match the checksum written with it (or hold NaN/inf)."""


def checksum(array: np.ndarray) -> str:
    """Returns the CRC-32 of an array's bytes in memory order, as 8 hex digits."""
    data = np.ascontiguousarray(array)
    return f"{zlib.crc32(memoryview(data).cast('B')) & 0xFFFFFFFF:08x}"


def finite(array: np.ndarray) -> bool:
    """Returns whether every entry of the array is a finite number."""
    return bool(np.isfinite(array).all())
