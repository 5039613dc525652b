"""A stored attention set, read lazily one sentence at a time and checked as it is read."""

from __future__ import annotations

import json
import pathlib

import numpy as np

from evo import derived, integrity
from evo.attention_set.layout import DERIVED_PREFIX, META_FILE, SCHEMA_VERSION, TENSOR_FILE, read_header
from evo.errors import UserError


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
