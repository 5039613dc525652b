"""Affinities kept beside an attention set, and handed to whoever asks for a sentence's.

    affinity-<stamp>.safetensors   one float16 (K, n, n) tensor per sentence, key s<i>, as the attention file
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import warnings

import numpy as np

from evo.affinity import reading
from evo.errors import UserError

PREFIX = "affinity-"                  # affinity-<stamp of the attention file>.safetensors
_SETS: dict[tuple[str, tuple[str, ...]], tuple[pathlib.Path, str, int]] = {}   # (model, tokens) -> file, key, heads
_HANDLES: dict[pathlib.Path, object] = {}
_CHECKED: dict[pathlib.Path, tuple] = {}   # file -> its size and time when this process found it whole
_LIVE: dict[str, "reading.Live"] = {}   # model -> the loaded model and the tokens read so far (text no set holds)


def file_for(aset) -> pathlib.Path:
    """Returns where an attention set's affinities live (named for the attention file they were read beside)."""
    return aset.path / f"{PREFIX}{aset.stamp()}.safetensors"


def ensure(aset) -> pathlib.Path:
    """Returns the attention set's affinity file, reading every token of the set alone (one model load) if
    missing; raises UserError when the set's model cannot be loaded."""
    path = file_for(aset)
    if path.is_file():
        problem = _problem(path, len(aset.tokens))
        if problem is None:
            return path
        warnings.warn(f"the affinities beside {aset.path} are damaged ({problem}); reading them again",
                      stacklevel=2)
    from safetensors.numpy import save_file

    from evo import models

    ids = aset.meta.get("token_ids")
    if not ids:
        raise UserError(f"the attention set at {aset.path} records no token ids; capture it again: "
                        f"{aset.rebuild_command()}")
    loaded = models.load(aset.model)
    vocab = sorted({int(i) for sentence in ids for i in sentence})
    index = {t: r for r, t in enumerate(vocab)}
    found = reading.vectors(loaded, vocab)
    n_layers, n_heads = found.q.shape[1], found.q.shape[2]
    tensors = {}
    for s, sentence in enumerate(ids):
        rows = [index[int(t)] for t in sentence]
        tensors[f"s{s}"] = np.stack([found.matrix(rows, layer, head) for layer in range(n_layers)
                                     for head in range(n_heads)]).astype(np.float16)   # (K, n, n)
    try:
        fd, tmp = tempfile.mkstemp(dir=aset.path, prefix=".affinity-", suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"model": str(aset.model), "n_heads": str(n_heads)})
            os.replace(tmp, path)
            _CHECKED[path] = _mark(path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:   # a full disk, a folder you may not write: said in one line, nothing half-written
        raise UserError(f"cannot keep the affinities beside the attention set at {aset.path}: "
                        f"{err.strerror or err}") from None
    return path


def _mark(path: pathlib.Path) -> tuple:
    """Returns the file's size and modification time (a file changed since its check is checked again)."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _problem(path: pathlib.Path, sentences: int) -> str | None:
    """Returns what is wrong with an affinity file (unreadable, a sentence missing), or None; a file found whole
    in this process and unchanged since is not opened again (evaluation asks once a generation)."""
    if _CHECKED.get(path) == _mark(path):
        return None
    problem = _read_problem(path, sentences)
    if problem is None:
        _CHECKED[path] = _mark(path)
    return problem


def _read_problem(path: pathlib.Path, sentences: int) -> str | None:
    """Returns what is wrong with an affinity file, opening its header."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            keys = set(f.keys())
    except (OSError, SafetensorError) as err:
        return str(err).splitlines()[0] if str(err) else type(err).__name__
    missing = [s for s in range(sentences) if f"s{s}" not in keys]
    return f"sentence {missing[0]} missing" if missing else None


def preload(aset_dir: pathlib.Path) -> bool:
    """Hands this process the affinities stored beside an attention set, if any; returns whether it had them."""
    from evo import attention_set

    aset = attention_set.AttentionSet.load(pathlib.Path(aset_dir))
    path = file_for(aset)
    if not path.is_file() or _problem(path, len(aset.tokens)):
        return False   # nothing kept beside the set (or damaged): what programs ask is read off the model
    for s, tokens in enumerate(aset.tokens):
        _SETS[(str(aset.model), tuple(tokens))] = (path, f"s{s}", int(aset.meta["n_heads"]))
    return True


def stored(aset, count: int) -> list[np.ndarray] | None:
    """Returns the set's first `count` sentences' affinities, float16 (K, n, n) each, as kept beside it; None
    when none are kept (or the file is damaged): nothing is read off the model here."""
    path = file_for(aset)
    if not path.is_file() or _problem(path, len(aset.tokens)):
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return [f.get_tensor(f"s{s}") for s in range(min(count, len(aset.tokens)))]
    except (OSError, SafetensorError):   # damaged since it was checked: measured without
        return None


def for_sentences(sentences: list[list[str]], model: str, layer: int, head: int) -> list[np.ndarray]:
    """Returns head `layer`.`head` of `model`'s affinity on each sentence (float64 (n, n)): from a set this
    process was handed, or read off the model (loaded once per process) for text no set holds."""
    out = []
    for tokens in sentences:
        held = _SETS.get((model, tuple(tokens)))
        if held is None:
            out.append(_live(model).matrix(list(tokens), layer, head))
            continue
        path, key, n_heads = held
        if path not in _HANDLES:
            from safetensors import safe_open

            _HANDLES[path] = safe_open(str(path), framework="numpy")
        values = _HANDLES[path].get_slice(key)
        reading.check(layer, head, values.get_shape()[0] // n_heads, n_heads)
        out.append(np.asarray(values[layer * n_heads + head], dtype=np.float64))
    return out


def adopt(loaded) -> bool:
    """Lets this process read text no set holds off a model it has already loaded (`evo replace`'s), rather
    than load a second copy; only a float32 one, as the kept values are read. Returns whether it was taken."""
    import torch

    if loaded.name in _LIVE or next(loaded.model.parameters()).dtype != torch.float32:
        return False
    _LIVE[loaded.name] = reading.Live(loaded.name, loaded)
    return True


def _live(model: str) -> reading.Live:
    """Returns the model `model` loaded for reading tokens alone (once per process)."""
    if model not in _LIVE:
        _LIVE[model] = reading.Live(model)
    return _LIVE[model]
