"""A user's GGUF file, checked before transformers reads it: the magic bytes, then its header and tensor
extents, so that an empty, foreign or truncated file is one line naming it, not a reader's traceback."""

from __future__ import annotations

import pathlib

from evo.errors import UserError


def check(path: pathlib.Path) -> None:
    """Raises a one-line error unless the file starts with the GGUF magic bytes."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    if magic != b"GGUF":
        raise UserError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
    _check_body(path)


def _check_body(path: pathlib.Path) -> None:
    """Raises a one-line error when the GGUF's header or tensor data cannot be read whole: what an
    interrupted download or a copy cut short leaves behind the right magic bytes."""
    import gguf

    size = path.stat().st_size
    try:
        reader = gguf.GGUFReader(path)
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except (ValueError, IndexError, KeyError, OSError, OverflowError) as err:
        raise UserError(f"{path} is a damaged GGUF file ({size:,} bytes; its header or tensors cannot be read: "
                        f"{type(err).__name__}), probably truncated; download or assemble it again") from None
    if end > size:
        raise UserError(f"{path} is a truncated GGUF file: its tensors need {end:,} bytes, it has {size:,}; "
                        "download or assemble it again")
