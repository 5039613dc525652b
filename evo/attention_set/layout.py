"""What an attention set's directory holds and how its tensor file's header is laid out (safetensors)."""

from __future__ import annotations

import json
import os
import pathlib
import struct

SCHEMA_VERSION = 1
META_FILE = "meta.json"
TENSOR_FILE = "attention.safetensors"
ALIGN = 8                     # bytes the header is padded to
DERIVED_PREFIX = "derived-"   # arrays computed from the set and cached beside it (AttentionSet.derived)


def read_header(file: pathlib.Path) -> dict:
    """Returns the JSON header of a safetensors file; ValueError when malformed."""
    with open(file, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("file shorter than its header length")
        (size,) = struct.unpack("<Q", raw)
        if size > 100_000_000:
            raise ValueError(f"header length {size} implausible")
        body = f.read(size)
        if len(body) != size:
            raise ValueError("truncated header")
        file_size = os.fstat(f.fileno()).st_size
    header = json.loads(body)
    end = max((e["data_offsets"][1] for k, e in header.items() if k != "__metadata__"), default=0)
    if 8 + size + end != file_size:
        raise ValueError(f"data ends at {8 + size + end} bytes but the file has {file_size}")
    return header
