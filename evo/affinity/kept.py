"""Affinities kept beside an attention set, and handed to whoever asks for a sentence's.

    affinity-<stamp>.safetensors               one float16 (K, n, n) tensor per sentence, key s<i>, as the
                                               attention file: the tokens read alone
    affinity-at-distance-<stamp>.safetensors   the same, each pair at its distance apart (a rotary model's;
                                               the first file's metadata says whether there is one)
    affinity-in-context-<c>-<stamp>.safetensors   each token read beside the c before it (evo.affinity.context),
                                               c = 1 .. the first file's "contexts"
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import warnings

import numpy as np

from evo.affinity import context as contexts, reading, rotary
from evo.errors import UserError

PREFIX = "affinity-"                  # affinity-<stamp of the attention file>.safetensors
AT_DISTANCE = "at-distance-"          # affinity-at-distance-<stamp>.safetensors
IN_CONTEXT = "in-context-"            # affinity-in-context-<c>-<stamp>.safetensors
_SETS: dict[tuple, tuple[pathlib.Path, str, int]] = {}   # (model, tokens, kind) -> file, key, heads (`kind`)
_HANDLES: dict[pathlib.Path, object] = {}
_CHECKED: dict[pathlib.Path, tuple] = {}   # file -> its size and time when this process found it whole, metadata
_LIVE: dict[str, "reading.Live"] = {}   # model -> the loaded model and the tokens read so far (text no set holds)
_MISSING, _NOT_AT_DISTANCE, _NOT_IN_CONTEXT = "missing", "no affinities at distance kept yet", "no context kept yet"


def kind(at_distance: bool = False, context: int = 0) -> tuple[bool, int]:
    """Returns which affinity is meant: (at distance, tokens of context); in context, the distance is the model's."""
    return (bool(at_distance) and not context, int(context))


def file_for(aset, at_distance: bool = False, context: int = 0) -> pathlib.Path:
    """Returns where an attention set's affinities live (named for the attention file they were read beside)."""
    named = f"{IN_CONTEXT}{int(context)}-" if context else AT_DISTANCE if at_distance else ""
    return aset.path / f"{PREFIX}{named}{aset.stamp()}.safetensors"


def ensure(aset) -> pathlib.Path:
    """Returns the attention set's affinity file, reading every token of the set alone and in each context (one
    model load) if it, the file at distance its model has, or a context's file is missing; raises UserError when
    the set's model cannot be loaded."""
    path = file_for(aset)
    problem = kept_problem(aset)
    if problem is None:
        return path
    if problem not in (_MISSING, _NOT_AT_DISTANCE, _NOT_IN_CONTEXT):
        warnings.warn(f"the affinities beside {aset.path} are damaged ({problem}); reading them again",
                      stacklevel=2)
    ids = aset.meta.get("token_ids")
    if not ids:
        raise UserError(f"the attention set at {aset.path} records no token ids; capture it again: "
                        f"{aset.rebuild_command()}")
    from evo import models

    loaded = models.load(aset.model)
    vocab = sorted({int(i) for sentence in ids for i in sentence})
    index = {t: r for r, t in enumerate(vocab)}
    found = reading.vectors(loaded, vocab)
    turns = rotary.read(loaded, max(len(sentence) for sentence in ids))
    n_layers, n_heads = found.q.shape[1], found.q.shape[2]
    meta = {"model": str(aset.model), "n_heads": str(n_heads), "at_distance": "1" if turns else "0",
            "contexts": str(contexts.MAX)}

    def tensors(vectors, rows, with_turns, gaps=None):
        return {f"s{s}": np.stack([vectors.matrix(rows[s], layer, head, with_turns, gaps and gaps[s])
                                   for layer in range(n_layers) for head in range(n_heads)]).astype(np.float16)
                for s in range(len(ids))}   # (K, n, n) each

    alone = [[index[int(t)] for t in sentence] for sentence in ids]
    if turns is not None:
        _write(file_for(aset, True), tensors(found, alone, turns), meta, aset)
    start = reading.start_ids(loaded.tokenizer)
    for c in range(1, contexts.MAX + 1):   # one context at a time: its vectors only are held (a reading a token)
        read = [contexts.readings([int(i) for i in sentence], c, start) for sentence in ids]
        at = {r: i for i, r in enumerate(dict.fromkeys(r for sentence in read for r in sentence))}
        beside = reading.read_ids(loaded, [list(r) for r in at])
        _write(file_for(aset, context=c), tensors(beside, [[at[r] for r in sentence] for sentence in read], turns,
                                                  [contexts.gaps(sentence) for sentence in read]), meta, aset)
        del beside
    _write(path, tensors(found, alone, None), meta, aset)   # last: a whole first file says the others are whole too
    return path


def _write(path: pathlib.Path, tensors: dict, meta: dict, aset) -> None:
    """Writes one affinity file atomically; a full disk or a folder you may not write is one line."""
    from safetensors.numpy import save_file

    try:
        fd, tmp = tempfile.mkstemp(dir=aset.path, prefix=".affinity-", suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=meta)
            os.replace(tmp, path)
            _CHECKED[path] = (_mark(path), meta)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:   # nothing half-written
        raise UserError(f"cannot keep the affinities beside the attention set at {aset.path}: "
                        f"{err.strerror or err}") from None


def kept_problem(aset) -> str | None:
    """Returns what is missing or wrong among the set's affinity files, or None when all it should have are whole."""
    path = file_for(aset)
    if not path.is_file():
        return _MISSING
    problem = _problem(path, len(aset.tokens))
    if problem is None and has_distance(path):
        far = file_for(aset, True)
        problem = _problem(far, len(aset.tokens)) if far.is_file() else _NOT_AT_DISTANCE
    for c in range(1, contexts_kept(path) + 1):
        if problem is None:
            beside = file_for(aset, context=c)
            problem = _problem(beside, len(aset.tokens)) if beside.is_file() else _NOT_IN_CONTEXT
    return problem


def contexts_kept(path: pathlib.Path) -> int:
    """Returns how many tokens of context a whole affinity file says its set has files for (one kept before
    they were: as many as a new one has, so they are read)."""
    checked = _CHECKED.get(path)
    return contexts.MAX if checked is None else int(checked[1].get("contexts", contexts.MAX))


def has_distance(path: pathlib.Path) -> bool:
    """Returns whether a whole affinity file says its set has affinities at distance too (a file kept before
    they were: as if it did, so they are read)."""
    checked = _CHECKED.get(path)
    return checked is None or checked[1].get("at_distance", "1") == "1"


def _mark(path: pathlib.Path) -> tuple:
    """Returns the file's size and modification time (a file changed since its check is checked again)."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _problem(path: pathlib.Path, sentences: int) -> str | None:
    """Returns what is wrong with an affinity file (unreadable, a sentence missing), or None; a file found whole
    in this process and unchanged since is not opened again (evaluation asks once a generation)."""
    if path in _CHECKED and _CHECKED[path][0] == _mark(path):
        return None
    problem, meta = _read_problem(path, sentences)
    if problem is None:
        _CHECKED[path] = (_mark(path), meta)
    return problem


def _read_problem(path: pathlib.Path, sentences: int) -> tuple[str | None, dict]:
    """Returns what is wrong with an affinity file, opening its header, and its metadata."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            keys, meta = set(f.keys()), dict(f.metadata() or {})
    except (OSError, SafetensorError) as err:
        return (str(err).splitlines()[0] if str(err) else type(err).__name__), {}
    missing = [s for s in range(sentences) if f"s{s}" not in keys]
    return (f"sentence {missing[0]} missing" if missing else None), meta


def preload(aset_dir: pathlib.Path) -> bool:
    """Hands this process the affinities stored beside an attention set, if any (at distance too, where kept);
    returns whether it had them."""
    from evo import attention_set

    aset = attention_set.AttentionSet.load(pathlib.Path(aset_dir))
    path = file_for(aset)
    if not path.is_file() or _problem(path, len(aset.tokens)):
        return False   # nothing kept beside the set (or damaged): what programs ask is read off the model
    kinds = [(kind(), path)] + ([(kind(True), file_for(aset, True))] if has_distance(path) else []) \
        + [(kind(context=c), file_for(aset, context=c)) for c in range(1, contexts_kept(path) + 1)]
    for which, file in kinds:
        if not file.is_file() or _problem(file, len(aset.tokens)):
            continue
        for s, tokens in enumerate(aset.tokens):
            _SETS[(str(aset.model), tuple(tokens), which)] = (file, f"s{s}", int(aset.meta["n_heads"]))
    return True


def at_distance_kept(aset_dir: pathlib.Path, context: int = 0) -> bool:
    """Returns whether this process was handed affinities at distance for the set (its model is rotary), or
    with `context`, those of each token read beside that many before it."""
    from evo import attention_set

    aset = attention_set.AttentionSet.load(pathlib.Path(aset_dir))
    return bool(aset.tokens) and (str(aset.model), tuple(aset.tokens[0]), kind(not context, context)) in _SETS


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


def for_sentences(sentences: list[list[str]], model: str, layer: int, head: int,
                  at_distance: bool = False, context: int = 0) -> list[np.ndarray]:
    """Returns head `layer`.`head` of `model`'s affinity on each sentence (float64 (n, n)), at each pair's
    distance apart if asked, or with each token read beside `context` tokens before it: from a set this process
    was handed, or read off the model (loaded once per process) for text no set holds."""
    out, which = [], kind(at_distance, context)
    for tokens in sentences:
        held = _SETS.get((model, tuple(tokens), which))
        if held is None:
            out.append(_live(model).matrix(list(tokens), layer, head, *which))
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
