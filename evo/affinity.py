"""Each head's affinity between tokens read alone: one token's query against another token's key, as the
model computes them for each token on its own.

    q(t), k(t)      <- one forward pass over [start, t] for each token t (start: the special token the
                       model's sentences begin with, if any), recorded inside the attention function
                       at t's position, every layer at once
    affinity[i, j]  =  q(t_i) . k(t_j) * scaling       # per head; both at one position, so a rotary
                                                        # embedding cancels; soft-capped as the head is

These are the head's scores if only the tokens' identities counted (its token-level query-key
circuit, read through the whole model for each token alone). Where a head follows content, the
term carries much of its attention; where it follows position or structure, little, and a fit
gives it little weight. `ensure` writes the set's affinities beside it (one float16 (K, n, n)
tensor per sentence, laid out as the attention file); `preload` hands a process the set's
sentences, so programs read them and never the model; `for_sentences` is what the sandbox's
caller and the prelude ask, loading the model only for text no set holds.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import tempfile
import warnings

import numpy as np

from evo.errors import UserError

PREFIX = "affinity-"                  # affinity-<stamp of the attention file>.safetensors
NAME = "affinity"                     # the prelude helper programs call
MAX_HEADS = 4                         # heads one program may read (each is handed over for every sentence)
_USES = re.compile(r"\baffinity\s*\(")
_SETS: dict[tuple[str, tuple[str, ...]], tuple[pathlib.Path, str, int]] = {}   # (model, tokens) -> file, key, heads
_HANDLES: dict[pathlib.Path, object] = {}
_LIVE: dict[str, "_Live"] = {}        # model -> the loaded model and the tokens read so far (text no set holds)


@dataclasses.dataclass
class Vectors:
    """Each token's query and key, read alone, per layer."""

    q: np.ndarray          # (V, L, H, d)
    k: np.ndarray          # (V, L, KV, d)
    scaling: np.ndarray    # (L,)
    softcap: list          # per layer: the soft cap of its scores, or None

    def matrix(self, rows: list[int], layer: int, head: int) -> np.ndarray:
        """Returns head `layer`.`head`'s affinity between the tokens at `rows` of these vectors: (n, n)."""
        groups = self.q.shape[2] // self.k.shape[2]
        q, k = self.q[rows, layer, head], self.k[rows, layer, head // groups]   # (n, d) each
        scores = (q @ k.T) * float(self.scaling[layer])
        cap = self.softcap[layer]
        return np.tanh(scores / cap) * cap if cap else scores


def uses(source: str) -> bool:
    """Returns whether a program's source names the affinity helper."""
    return bool(_USES.search(source))


def calls(source: str) -> list[tuple[str, int, int]]:
    """Returns the (model, layer, head) of each affinity call in a program; raises ValueError for a call whose
    model, layer or head is not written out as a constant (the values are handed over before it runs)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == NAME):
            continue
        given = dict(zip(("tokens", "model", "layer", "head"), node.args))
        given.update({k.arg: k.value for k in node.keywords if k.arg})
        values = [given.get(k) for k in ("model", "layer", "head")]
        if not all(isinstance(v, ast.Constant) for v in values) or not isinstance(values[0].value, str) \
                or not all(type(v.value) is int for v in values[1:]):
            raise ValueError("affinity(tokens, model, layer, head) takes its model, layer and head as constants")
        found.append((values[0].value, values[1].value, values[2].value))
    found = list(dict.fromkeys(found))
    if len(found) > MAX_HEADS:
        raise ValueError(f"a program may read the affinity of {MAX_HEADS} heads at most, not {len(found)}")
    return found


def vectors(loaded, ids: list[int], batch_size: int = 64) -> Vectors:
    """Returns the query and key of each token id read alone, every layer, from the loaded model."""
    import torch

    from evo import substitute

    modules = substitute.attention_modules(loaded.model)
    layer_of = {id(m): layer for layer, m in modules.items()}
    eager, seen = substitute.eager(modules), {}

    def watching(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None, **kwargs):
        # query (B, H, T, d), key (B, KV, T, d): the token is the last position
        seen[layer_of[id(module)]] = (query[:, :, -1].float().cpu().numpy(), key[:, :, -1].float().cpu().numpy(),
                                      scaling if scaling is not None else query.size(-1) ** -0.5, softcap)
        return eager(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, softcap=softcap,
                     **kwargs)

    start = _start(loaded.tokenizer)
    qs, ks = [], []
    with substitute.attention_function(loaded.model, watching), torch.inference_mode():
        for at in range(0, len(ids), batch_size):
            chunk = torch.tensor([start + [int(i)] for i in ids[at:at + batch_size]], device=loaded.device)
            seen.clear()
            loaded.model.base_model(input_ids=chunk, **({"use_cache": False} if loaded.causal else {}))
            qs.append(np.stack([seen[layer][0] for layer in sorted(modules)], axis=1))   # (B, L, H, d)
            ks.append(np.stack([seen[layer][1] for layer in sorted(modules)], axis=1))   # (B, L, KV, d)
    layers = [seen[layer] for layer in sorted(modules)]
    return Vectors(np.concatenate(qs), np.concatenate(ks), np.array([float(s[2]) for s in layers]),
                   [float(s[3]) if s[3] else None for s in layers])


def _start(tokenizer) -> list[int]:
    """Returns the special token ids the tokenizer puts before a text's own (the model's sequence start)."""
    ids = tokenizer("a")["input_ids"]
    return [ids[0]] if len(ids) > 1 and ids[0] in set(tokenizer.all_special_ids) else []


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
    found = vectors(loaded, vocab)
    n_layers, n_heads = found.q.shape[1], found.q.shape[2]
    tensors = {}
    for s, sentence in enumerate(ids):
        rows = [index[int(t)] for t in sentence]
        tensors[f"s{s}"] = np.stack([found.matrix(rows, layer, head) for layer in range(n_layers)
                                     for head in range(n_heads)]).astype(np.float16)   # (K, n, n)
    fd, tmp = tempfile.mkstemp(dir=aset.path, prefix=".affinity-", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"model": str(aset.model), "n_heads": str(n_heads)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _problem(path: pathlib.Path, sentences: int) -> str | None:
    """Returns what is wrong with an affinity file (unreadable, a sentence missing), or None."""
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
        _check(layer, head, values.get_shape()[0] // n_heads, n_heads)
        out.append(np.asarray(values[layer * n_heads + head], dtype=np.float64))
    return out


def _check(layer: int, head: int, n_layers: int, n_heads: int) -> None:
    """Raises ValueError for a head the model does not have."""
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise ValueError(f"head {layer}.{head} does not exist: the model has {n_layers} layers x {n_heads} heads")


class _Live:
    """A model loaded to read tokens alone, with the tokens read so far."""

    def __init__(self, model: str):
        from evo import models

        self.loaded = models.load(model)
        self.rows: dict[int, int] = {}   # token id -> its row in `found`
        self.found: Vectors | None = None
        self._by_text: dict[str, int] | None = None

    def matrix(self, tokens: list[str], layer: int, head: int) -> np.ndarray:
        """Returns the head's affinity on one sentence's tokens, reading tokens not seen before alone."""
        ids = self.ids(tokens)
        new = sorted(set(ids) - set(self.rows))
        if new:
            more = vectors(self.loaded, new)
            self.rows.update({t: len(self.rows) + r for r, t in enumerate(new)})
            self.found = more if self.found is None else Vectors(
                np.concatenate([self.found.q, more.q]), np.concatenate([self.found.k, more.k]),
                self.found.scaling, self.found.softcap)
        _check(layer, head, self.found.q.shape[1], self.found.q.shape[2])
        return self.found.matrix([self.rows[t] for t in ids], layer, head).astype(np.float64)

    def ids(self, tokens: list[str]) -> list[int]:
        """Returns the token ids of a sentence's tokens: as the tokenizer encodes their text where that
        renders back to them (several ids can share a text), else each token's own."""
        from evo import tokens as texts

        tokenizer = self.loaded.tokenizer
        start = _start(tokenizer)
        framed = start + tokenizer("".join(tokens[len(start):]), add_special_tokens=False)["input_ids"]
        if texts.render(tokenizer, framed) == list(tokens):
            return framed
        return [self._id_of(t) for t in tokens]

    def _id_of(self, token: str) -> int:
        """Returns the id of one token's text (the first id that renders so)."""
        from evo import tokens as texts

        if self._by_text is None:
            self._by_text = {}
            for i in range(len(self.loaded.tokenizer)):
                self._by_text.setdefault(texts.render(self.loaded.tokenizer, [i])[0], i)
        if token not in self._by_text:
            raise UserError(f"affinity: {token!r} is not one token of {self.loaded.name}'s vocabulary")
        return self._by_text[token]


def _live(model: str) -> _Live:
    """Returns the model `model` loaded for reading tokens alone (once per process)."""
    if model not in _LIVE:
        _LIVE[model] = _Live(model)
    return _LIVE[model]
