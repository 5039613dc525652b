"""The on-disk attention set: per-sentence tokens and every head's attention matrices.

A set is a directory holding `meta.json` and `attention.safetensors`; the latter has one
float16 tensor per sentence, key `s{i}`, shape `(n_layers * n_heads, n, n)`, head index
`k = layer * n_heads + head`. `Writer` streams tensors to disk as they are computed (in
any order), so neither writing nor reading needs the whole set in memory.

Every sentence's tensor has a CRC-32 in `meta.json`, checked when first read in a process
(`verify`: all of them); sets made before checksums get a finiteness check only (evo.derived
keeps the arrays computed from a set).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import shutil
import struct
import tempfile

import numpy as np

from evo import derived, integrity
from evo.errors import UserError

SCHEMA_VERSION = 1
META_FILE = "meta.json"
TENSOR_FILE = "attention.safetensors"
_ALIGN = 8
DERIVED_PREFIX = "derived-"   # arrays computed from the set and cached beside it (AttentionSet.derived)


class AttentionSet:
    """A stored attention set, read lazily one sentence at a time."""

    def __init__(self, path: pathlib.Path, meta: dict):
        self.path = path
        self.meta = meta
        self.model: str = meta["model"]
        self.causal: bool = bool(meta["causal"])
        self.n_layers: int = int(meta["n_layers"])
        self.n_heads: int = int(meta["n_heads"])
        self.tokens: list[list[str]] = [list(t) for t in meta["tokens"]]
        self.checksums: list[str] | None = meta.get("checksums")
        self._verified: set[int] = set()
        self._handle = None

    @property
    def heads(self) -> list[tuple[int, int]]:
        """Returns (layer, head) for every head index k = layer * n_heads + head."""
        return [(layer, head) for layer in range(self.n_layers) for head in range(self.n_heads)]

    @property
    def sentences(self) -> list[str]:
        """Returns the text of each sentence as captured (after truncation of tokens)."""
        return list(self.meta.get("sentences", []))

    def __len__(self) -> int:
        return len(self.tokens)

    def matrices(self, i: int) -> np.ndarray:
        """Returns sentence i's attention as float32 (n_layers * n_heads, n, n)."""
        if not 0 <= i < len(self.tokens):
            raise IndexError(f"sentence {i} out of range: the set has {len(self.tokens)}")
        return self._checked(i).astype(np.float32)

    def _checked(self, i: int) -> np.ndarray:
        """Returns sentence i's tensor as stored (float16), checked the first time it is read in this process."""
        raw = self._raw(i)
        if i not in self._verified:
            problem = self._problem(i, raw)
            if problem:
                raise self.corrupt(problem)
            self._verified.add(i)
        return raw

    def _raw(self, i: int) -> np.ndarray:
        """Returns sentence i's float16 (K, n, n) tensor as stored, unchecked."""
        if self._handle is None:
            from safetensors import safe_open

            self._handle = safe_open(str(self.path / TENSOR_FILE), framework="numpy")
        return self._handle.get_tensor(f"s{i}")

    def corrupt(self, problem: str) -> integrity.CorruptCache:
        """Returns the one-line error for a damaged set: what is wrong and the command that captures it again."""
        return integrity.CorruptCache(f"corrupt attention set at {self.path}: {problem}; "
                                      f"capture it again: {self.rebuild_command()}")

    def _problem(self, i: int, raw: np.ndarray) -> str | None:
        """Returns what is wrong with sentence i's stored tensor, or None when it checks out."""
        if self.checksums is not None and integrity.checksum(raw.astype("<f2", copy=False)) != self.checksums[i]:
            return f"sentence {i} fails its checksum ({TENSOR_FILE} was changed after capture)"
        if not integrity.finite(raw):
            return f"sentence {i} holds NaN or infinite attention"
        return None

    def verify(self) -> str | None:
        """Returns the first problem found reading every sentence (checksum, NaN/inf), or None."""
        for i in range(len(self.tokens)):
            problem = self._problem(i, self._raw(i))
            if problem:
                return problem
            self._verified.add(i)
        return None

    def rebuild_command(self) -> str:
        """Returns the `evo capture` command line that makes this set again in place."""
        settings = self.meta.get("settings") or {}
        text = (f"--corpus {settings['corpus_path']}" if settings.get("corpus_path")
                else f"--split {settings.get('split') or 'search'}")
        dtype = f" --dtype {settings['dtype']}" if settings.get("dtype", "float32") != "float32" else ""
        return (f"evo capture --model {settings.get('model') or self.model} {text} --sentence-tokens "
                f"{self.meta.get('max_tokens', 64)}{dtype} --out {self.path} --force")

    def derived(self, name: str, shape: tuple, fill, dtype=np.float32) -> np.ndarray:
        """Returns an array computed from this set, memory-mapped read-only from a file beside it.

        `fill(out)` writes the array into `out` (shape, dtype) once: straight into the file
        (a .npy written under a lock, then renamed into place), so even building it never
        holds a private copy; afterwards every process on the machine that reads it shares
        one copy. Where the set's folder is not writable the array is built in memory.
        """
        file = self.path / f"{DERIVED_PREFIX}{name}-{self.stamp()}.npy"
        return derived.cached(file, shape, fill, dtype, on_build=self._unmap)

    def stamp(self) -> str:
        """Returns a mark of the attention file (size, time) that files kept beside the set carry in their names."""
        tensors = (self.path / TENSOR_FILE).stat()
        return f"{tensors.st_size:x}{tensors.st_mtime_ns:x}"[-12:]

    def _unmap(self) -> None:
        """Drops the memory map of the attention file (building a derived array read through it)."""
        self._handle = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"] = None  # a file handle does not cross process boundaries
        return state

    @classmethod
    def load(cls, path, verify: bool = False) -> "AttentionSet":
        """Returns the set stored at path; UserError when missing, corrupt or of another schema.

        With `verify`, every sentence is read once and checked (CorruptCache naming the command
        that captures it again); otherwise each sentence is checked when first read.
        """
        path = pathlib.Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise UserError(f"no attention set at {path} (missing {META_FILE}); run `evo capture` first")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UserError(f"corrupt attention set at {path}: {META_FILE} unreadable ({err})") from err
        version = meta.get("schema_version") if isinstance(meta, dict) else None
        if version != SCHEMA_VERSION:
            raise UserError(
                f"attention set at {path} has schema version {version!r}, this headcode reads "
                f"{SCHEMA_VERSION}; capture it again"
            )
        _check_tensor_file(path, meta)
        aset = cls(path, meta)
        problem = aset.verify() if verify else None
        if problem:
            raise aset.corrupt(problem)
        return aset


def _check_tensor_file(path: pathlib.Path, meta: dict) -> None:
    """Raises UserError unless the tensor file's header lists every sentence with the right shape."""
    missing = [key for key in ("model", "causal", "n_layers", "n_heads", "tokens") if key not in meta]
    if missing:
        raise UserError(f"corrupt attention set at {path}: {META_FILE} lacks {', '.join(missing)}")
    try:
        header = read_header(path / TENSOR_FILE)
    except (OSError, ValueError) as err:
        raise UserError(f"corrupt attention set at {path}: {TENSOR_FILE} unreadable ({err})") from err
    heads = int(meta["n_layers"]) * int(meta["n_heads"])
    for i, tokens in enumerate(meta["tokens"]):
        n = len(tokens)
        entry = header.get(f"s{i}")
        if entry is None or entry.get("shape") != [heads, n, n] or entry.get("dtype") != "F16":
            raise UserError(
                f"corrupt attention set at {path}: tensor s{i} missing or not F16 ({heads}, {n}, {n})"
            )


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
        body += b" " * (-(8 + len(body)) % _ALIGN)
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
