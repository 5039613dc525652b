"""Writing an attention set: one float16 tensor per sentence streamed into a new directory, renamed into place."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import shutil
import struct
import tempfile

import numpy as np

from evo import integrity
from evo.attention_set.layout import ALIGN, META_FILE, SCHEMA_VERSION, TENSOR_FILE
from evo.attention_set.stored import AttentionSet
from evo.errors import UserError


class Writer:
    """Streams one float16 tensor per sentence into a new set directory, then renames it into place.

    Shapes are fixed up front (the safetensors header comes first); tensors may then be
    added in any order. Use as a context manager: on error the partial set is removed.
    """

    def __init__(self, out_dir, meta: dict, n_tokens: list[int]):
        self.out_dir = pathlib.Path(out_dir)
        self.meta = dict(meta, schema_version=SCHEMA_VERSION)
        self.meta.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat())
        self.heads = int(meta["n_layers"]) * int(meta["n_heads"])
        self.n_tokens = list(n_tokens)
        self.written: set[int] = set()
        self.checksums: dict[int, str] = {}
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.", dir=self.out_dir.parent))
        os.chmod(self.tmp, 0o755)  # mkdtemp makes it private; the finished set is an ordinary directory
        self._file = open(self.tmp / TENSOR_FILE, "wb")
        self._offsets = self._write_header()

    def _write_header(self) -> list[int]:
        """Writes the header; returns each sentence's byte offset in the data section."""
        header, offsets, pos = {}, [], 0
        for i, n in enumerate(self.n_tokens):
            size = self.heads * n * n * 2
            header[f"s{i}"] = {"dtype": "F16", "shape": [self.heads, n, n], "data_offsets": [pos, pos + size]}
            offsets.append(pos)
            pos += size
        header["__metadata__"] = {"format": "headcode-attention", "schema_version": str(SCHEMA_VERSION)}
        body = json.dumps(header, separators=(",", ":")).encode()
        body += b" " * (-(8 + len(body)) % ALIGN)
        self._file.write(struct.pack("<Q", len(body)) + body)
        self._data_start = 8 + len(body)
        self._file.truncate(self._data_start + pos)
        return offsets

    def add(self, i: int, matrices: np.ndarray) -> None:
        """Writes sentence i's (n_layers * n_heads, n, n) matrices as float16."""
        n = self.n_tokens[i]
        if matrices.shape != (self.heads, n, n):
            raise ValueError(f"sentence {i}: expected shape {(self.heads, n, n)}, got {matrices.shape}")
        if i in self.written:
            raise ValueError(f"sentence {i} written twice")
        data = np.ascontiguousarray(matrices, dtype="<f2")
        if not integrity.finite(data):
            raise UserError(f"the model's attention for sentence {i} holds NaN or infinite values "
                            f"(in {self.meta.get('dtype', 'its dtype')}); capture with --dtype float32")
        self._file.seek(self._data_start + self._offsets[i])
        self._file.write(data.tobytes())
        self.checksums[i] = integrity.checksum(data)
        self.written.add(i)

    def commit(self) -> AttentionSet:
        """Returns the finished set after moving it into out_dir (replacing what was there)."""
        missing = sorted(set(range(len(self.n_tokens))) - self.written)
        assert not missing, f"sentences never written: {missing[:5]}"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.meta["checksums"] = [self.checksums[i] for i in range(len(self.n_tokens))]
        (self.tmp / META_FILE).write_text(json.dumps(self.meta, ensure_ascii=False), encoding="utf-8")
        if self.out_dir.exists():
            old = self.out_dir.with_name(f".{self.out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.out_dir, old)
            os.replace(self.tmp, self.out_dir)
            shutil.rmtree(old)
        else:
            os.replace(self.tmp, self.out_dir)
        return AttentionSet.load(self.out_dir)

    def abort(self) -> None:
        """Removes the partial set."""
        if not self._file.closed:
            self._file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.tmp.exists():
            self.abort()


def write(out_dir, meta: dict, matrices: list[np.ndarray]) -> AttentionSet:
    """Returns a new set at out_dir holding the given per-sentence matrices (small sets, tests)."""
    with Writer(out_dir, meta, [m.shape[-1] for m in matrices]) as writer:
        for i, m in enumerate(matrices):
            writer.add(i, m)
        return writer.commit()
