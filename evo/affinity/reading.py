"""Reading each token alone off the model: its query and key in every layer, and a head's affinity from them."""

from __future__ import annotations

import dataclasses

import numpy as np

from evo.affinity import rotary
from evo.errors import UserError


@dataclasses.dataclass
class Vectors:
    """Each token's query and key, read alone, per layer."""

    q: np.ndarray          # (V, L, H, d)
    k: np.ndarray          # (V, L, KV, d)
    scaling: np.ndarray    # (L,)
    softcap: list          # per layer: the soft cap of its scores, or None

    def matrix(self, rows: list[int], layer: int, head: int, turns: "rotary.Turns | None" = None,
               gap: np.ndarray | None = None) -> np.ndarray:
        """Returns head `layer`.`head`'s affinity between the tokens at `rows` of these vectors: (n, n); with
        `turns`, each pair at its distance apart in the sentence (rows in sentence order; `gap`: how far each
        query is turned, where the rows were read at different positions)."""
        groups = self.q.shape[2] // self.k.shape[2]
        q, k = self.q[rows, layer, head], self.k[rows, layer, head // groups]   # (n, d) each
        products = turns.at_distance(q, k, layer, gap) if turns is not None else q @ k.T
        scores = products * float(self.scaling[layer])
        cap = self.softcap[layer]
        return np.tanh(scores / cap) * cap if cap else scores


def vectors(loaded, ids: list, batch_size: int = 64) -> Vectors:
    """Returns the query and key of each token read alone, every layer, from the loaded model: a token id, or
    a tuple of ids (a text the vocabulary has no one token for, read to its last piece)."""
    start = start_ids(loaded.tokenizer)
    return read_ids(loaded, [start + ([int(i)] if isinstance(i, (int, np.integer)) else [int(j) for j in i]) for i in ids],
                batch_size)


def read_ids(loaded, inputs: list[list[int]], batch_size: int = 64) -> Vectors:
    """Returns the query and key at the last position of each input (a whole sequence of ids), every layer."""
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

    by_length: dict[int, list[int]] = {}   # one length a batch: no padding
    for r, row in enumerate(inputs):
        by_length.setdefault(len(row), []).append(r)
    batches = [group[at:at + batch_size] for group in by_length.values() for at in range(0, len(group), batch_size)]
    q, k = [None] * len(inputs), [None] * len(inputs)
    with substitute.attention_function(loaded.model, watching), torch.inference_mode():
        for rows in batches:
            chunk = torch.tensor([inputs[r] for r in rows], device=loaded.device)
            seen.clear()
            loaded.model.base_model(input_ids=chunk, **({"use_cache": False} if loaded.causal else {}))
            for b, r in enumerate(rows):
                q[r] = np.stack([seen[layer][0][b] for layer in sorted(modules)])   # (L, H, d)
                k[r] = np.stack([seen[layer][1][b] for layer in sorted(modules)])   # (L, KV, d)
    layers = [seen[layer] for layer in sorted(modules)]
    return Vectors(np.stack(q), np.stack(k), np.array([float(s[2]) for s in layers]),
                   [float(s[3]) if s[3] else None for s in layers])


def start_ids(tokenizer) -> list[int]:
    """Returns the special token ids the tokenizer puts before a text's own (the model's sequence start)."""
    ids = tokenizer("a")["input_ids"]
    return [ids[0]] if len(ids) > 1 and ids[0] in set(tokenizer.all_special_ids) else []


class Live:
    """A model loaded to read tokens alone (text no attention set holds), with the tokens read so far."""

    def __init__(self, model: str, loaded=None):
        from evo import models

        self.loaded = loaded if loaded is not None else models.load(model)
        self.rows: dict = {}   # token id (or a text's piece ids) -> its row in `found`
        self.found: Vectors | None = None
        self.turns: rotary.Turns | None | bool = None   # False: the model has none
        self._by_text: dict[str, int] | None = None
        self.beside: dict = {}   # a reading (the ids a token is read beside) -> its row in `found_beside`
        self.found_beside: Vectors | None = None

    def matrix(self, tokens: list[str], layer: int, head: int, at_distance: bool = False,
               context: int = 0) -> np.ndarray:
        """Returns the head's affinity on one sentence's tokens, reading tokens not seen before alone; with
        `at_distance`, each pair at its distance apart (UserError for a model with no rotary embedding); with
        `context`, each token beside that many before it (evo.affinity.context)."""
        if context:
            return self._in_context(tokens, layer, head, context)
        turns = self._turns(len(tokens)) if at_distance else None
        ids = self.ids(tokens)
        new = list(dict.fromkeys(i for i in ids if i not in self.rows))
        if new:
            more = vectors(self.loaded, new)
            self.rows.update({t: len(self.rows) + r for r, t in enumerate(new)})
            self.found = _joined(self.found, more)
        check(layer, head, self.found.q.shape[1], self.found.q.shape[2])
        return self.found.matrix([self.rows[t] for t in ids], layer, head, turns).astype(np.float64)

    def _in_context(self, tokens: list[str], layer: int, head: int, context: int) -> np.ndarray:
        from evo.affinity import context as contexts

        ids = [i if isinstance(i, tuple) else (i,) for i in self.ids(tokens)]   # a token's pieces, read to the last
        start = start_ids(self.loaded.tokenizer)
        read = [sum(r, ()) for r in contexts.readings(ids, context, [(i,) for i in start])]
        new = list(dict.fromkeys(r for r in read if r not in self.beside))
        if new:
            more = read_ids(self.loaded, [list(r) for r in new])
            self.beside.update({r: len(self.beside) + n for n, r in enumerate(new)})
            self.found_beside = _joined(self.found_beside, more)
        check(layer, head, self.found_beside.q.shape[1], self.found_beside.q.shape[2])
        turns = self._turns(len(tokens), needed=False)
        return self.found_beside.matrix([self.beside[r] for r in read], layer, head, turns or None,
                                        contexts.gaps(read)).astype(np.float64)

    def _turns(self, length: int, needed: bool = True) -> rotary.Turns:
        """Returns the model's rotations for at least `length` positions (read again, longer, as needed)."""
        if self.turns is None or (self.turns and self.turns.length < length):
            self.turns = rotary.read(self.loaded, max(length, 2 * (self.turns.length if self.turns else 64))) or False
        if not self.turns and needed:
            raise UserError(f"{self.loaded.name} has no rotary position embedding: affinity_at_distance "
                            "needs one (affinity reads the tokens alone)")
        return self.turns

    def ids(self, tokens: list[str]) -> list:
        """Returns the token ids of a sentence's tokens: as the tokenizer encodes their text where that
        renders back to them (several ids can share a text), else each token's own (a token that is no one
        token of the vocabulary: the ids of its text, read to the last)."""
        from evo import tokens as texts

        tokenizer = self.loaded.tokenizer
        start = start_ids(tokenizer)
        framed = start + tokenizer("".join(tokens[len(start):]), add_special_tokens=False)["input_ids"]
        if texts.render(tokenizer, framed) == list(tokens):
            return framed
        return [self._id_of(t) for t in tokens]

    def _id_of(self, token: str):
        """Returns the id of one token's text (the first id that renders so), or the ids its text encodes to."""
        from evo import tokens as texts

        if self._by_text is None:
            self._by_text = {}
            for i in range(len(self.loaded.tokenizer)):
                self._by_text.setdefault(texts.render(self.loaded.tokenizer, [i])[0], i)
        if token in self._by_text:
            return self._by_text[token]
        pieces = tuple(self.loaded.tokenizer(token, add_special_tokens=False)["input_ids"])
        if not pieces:
            raise UserError(f"affinity: {token!r} gives no token of {self.loaded.name}'s vocabulary")
        return pieces


def _joined(found: Vectors | None, more: Vectors) -> Vectors:
    """Returns the vectors read so far with more of them after (rows in reading order)."""
    if found is None:
        return more
    return Vectors(np.concatenate([found.q, more.q]), np.concatenate([found.k, more.k]), found.scaling, found.softcap)


def check(layer: int, head: int, n_layers: int, n_heads: int) -> None:
    """Raises ValueError for a head the model does not have."""
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise ValueError(f"head {layer}.{head} does not exist: the model has {n_layers} layers x {n_heads} heads")
