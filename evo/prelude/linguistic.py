"""Linguistic helpers: what a token's word is and how words relate (part of speech, heads, chunks).

(This is `evo.prelude`'s linguistic part; it needs the `headcode[linguistic]` extra: spaCy
and an English pipeline.) Every helper takes the sentence's `tokens` and token positions.
Tokens map to words by character offsets, so the pieces of one word share its
annotations; special tokens (`<bos>`, `[CLS]`) and bare whitespace belong to no word.

The annotations are computed once per sentence by trusted code (`evo.linguistic`) and
handed to the prelude before a program runs (`provide`); a program never parses. An
exported program run on its own parses a sentence on first use with the installed
pipeline.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from evo.prelude.annotation import _KNOWN, Annotation, provide  # noqa: F401  (the store, re-exported)

__all__ = [
    "pos_of", "dep_of", "word_of", "head_of", "is_noun", "is_verb", "is_adj", "is_adv", "is_det",
    "is_pron", "is_adp", "is_propn", "is_num", "is_conj", "is_head_of", "same_chunk",
    "same_clause", "entity_of", "head_matrix", "pos_matrix", "pos_pair", "query_is", "key_is", "key_dep",
    "chunk_matrix", "clause_matrix", "sibling_matrix", "grandparent_matrix", "dependent_matrix", "nouns",
    "verbs", "previous_noun", "previous_verb",
]
# The linguistic helpers that are whole patterns (tokens -> (n, n)): basis terms a mix may use.
PATTERNS = ("head_matrix", "dependent_matrix", "grandparent_matrix", "sibling_matrix", "chunk_matrix",
            "clause_matrix", "nouns", "verbs", "previous_noun", "previous_verb")

NOUNS = frozenset({"NOUN", "PROPN"})
VERBS = frozenset({"VERB", "AUX"})


_PARSER = None  # tokens -> Annotation where no annotation was handed over (the sandbox sets one that refuses)


def annotation(tokens: Sequence[str]) -> Annotation:
    """Returns the sentence's annotation (handed over, or parsed now outside the sandbox)."""
    key = tuple(tokens)
    found = _KNOWN.get(key)
    if found is None:
        if _PARSER is None:   # a program run on its own, outside headcode: parse with the installed pipeline
            from evo import parsing

            found = parsing.for_sentences([list(tokens)])[0]
        else:
            found = _PARSER(list(tokens))
        _KNOWN[key] = found
    return found


def pos_of(tokens: Sequence[str], i: int) -> str:
    """Returns the part of speech of token i's word ("NOUN", "VERB", "DET", "ADP", "PUNCT", ...; "" none)."""
    return annotation(tokens).pos[i]


def dep_of(tokens: Sequence[str], i: int) -> str:
    """Returns the dependency relation of token i's word to its head ("nsubj", "det", "amod", ...)."""
    return annotation(tokens).dep[i]


def word_of(tokens: Sequence[str], i: int) -> int:
    """Returns the index of token i's word in the sentence (-1 for special tokens)."""
    return annotation(tokens).word[i]


def head_of(tokens: Sequence[str], i: int) -> int:
    """Returns the token index of the first piece of token i's head word (-1: the root, or no word)."""
    return annotation(tokens).head[i]


def _is(kinds, doc: str):
    """Returns a predicate on token i's word's part of speech, with its docstring."""
    def predicate(tokens: Sequence[str], i: int) -> bool:
        return annotation(tokens).pos[i] in kinds
    predicate.__doc__ = doc
    return predicate


is_noun = _is(NOUNS, "Returns whether token i's word is a noun or a proper noun.")
is_verb = _is(VERBS, "Returns whether token i's word is a verb or an auxiliary.")
is_adj = _is({"ADJ"}, "Returns whether token i's word is an adjective.")
is_adv = _is({"ADV"}, "Returns whether token i's word is an adverb.")
is_det = _is({"DET"}, "Returns whether token i's word is a determiner (the, a, this, ...).")
is_pron = _is({"PRON"}, "Returns whether token i's word is a pronoun.")
is_adp = _is({"ADP"}, "Returns whether token i's word is a preposition (an adposition).")
is_propn = _is({"PROPN"}, "Returns whether token i's word is a proper noun.")
is_num = _is({"NUM"}, "Returns whether token i's word is a number.")
is_conj = _is({"CCONJ", "SCONJ"}, "Returns whether token i's word is a conjunction.")


def is_head_of(tokens: Sequence[str], i: int, j: int) -> bool:
    """Returns whether token j belongs to the word that is the head of token i's word."""
    a = annotation(tokens)
    return a.head[i] >= 0 and a.word[j] >= 0 and a.word[j] == a.word[a.head[i]]


def same_chunk(tokens: Sequence[str], i: int, j: int) -> bool:
    """Returns whether tokens i and j are in the same noun chunk ("the lazy dog")."""
    a = annotation(tokens)
    return a.chunk[i] >= 0 and a.chunk[i] == a.chunk[j]


def same_clause(tokens: Sequence[str], i: int, j: int) -> bool:
    """Returns whether tokens i and j are in the same clause."""
    a = annotation(tokens)
    return a.clause[i] >= 0 and a.clause[i] == a.clause[j]


def entity_of(tokens: Sequence[str], i: int) -> str:
    """Returns the named-entity label of token i's word ("PERSON", "GPE", "DATE", ...; "" none)."""
    return annotation(tokens).entity[i]


def head_matrix(tokens: Sequence[str]) -> np.ndarray:
    """Returns (n, n): 1 where key j is a piece of query i's head word."""
    a, n = annotation(tokens), len(tokens)
    out = np.zeros((n, n))
    words = np.asarray(a.word)
    for i in range(n):
        if a.head[i] >= 0:
            out[i] = words == a.word[a.head[i]]
    return out


def pos_matrix(tokens: Sequence[str], kinds) -> np.ndarray:
    """Returns (n,): 1.0 where the token's word has one of the parts of speech in `kinds`."""
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    return np.array([p in kinds for p in annotation(tokens).pos], dtype=float)


def pos_pair(tokens: Sequence[str], query, key) -> np.ndarray:
    """Returns (n, n): 1 where query i's word is a `query` part of speech and key j's a `key` one."""
    return np.outer(pos_matrix(tokens, query), pos_matrix(tokens, key))


def query_is(tokens: Sequence[str], kinds) -> np.ndarray:
    """Returns (n, n): 1 in the rows of queries whose word is one of the parts of speech `kinds`."""
    m = pos_matrix(tokens, kinds)
    return np.repeat(m[:, None], len(m), axis=1)


def key_is(tokens: Sequence[str], kinds) -> np.ndarray:
    """Returns (n, n): 1 in the columns of keys whose word is one of the parts of speech `kinds`."""
    m = pos_matrix(tokens, kinds)
    return np.repeat(m[None, :], len(m), axis=0)


def key_dep(tokens: Sequence[str], relations) -> np.ndarray:
    """Returns (n, n): 1 in the columns of keys whose word has a dependency relation in `relations` ("det", ...)."""
    relations = {relations} if isinstance(relations, str) else set(relations)
    m = np.array([d in relations for d in annotation(tokens).dep], dtype=float)
    return np.repeat(m[None, :], len(m), axis=0)


def _same(labels: Sequence[int]) -> np.ndarray:
    a = np.asarray(labels)
    return ((a[:, None] == a[None, :]) & (a[:, None] >= 0)).astype(float)


def chunk_matrix(tokens: Sequence[str]) -> np.ndarray:
    """Returns (n, n): 1 where query i and key j are in the same noun chunk."""
    return _same(annotation(tokens).chunk)


def clause_matrix(tokens: Sequence[str]) -> np.ndarray:
    """Returns (n, n): 1 where query i and key j are in the same clause."""
    return _same(annotation(tokens).clause)


def sibling_matrix(tokens: Sequence[str]) -> np.ndarray:
    """Returns (n, n): 1 where key j's word and query i's word are different words with the same head."""
    a = annotation(tokens)
    heads, words = np.asarray(a.head), np.asarray(a.word)
    return ((heads[:, None] == heads[None, :]) & (heads[:, None] >= 0)
            & (words[:, None] != words[None, :])).astype(float)


def grandparent_matrix(tokens: Sequence[str]) -> np.ndarray:
    """Returns (n, n): 1 where key j is a piece of the head of query i's head word."""
    h = head_matrix(tokens)
    return np.minimum(h @ h, 1.0)


def dependent_matrix(tokens: Sequence[str]) -> np.ndarray:
    """Returns (n, n): 1 where key j's word depends on query i's word (query i's word is j's head)."""
    return head_matrix(tokens).T


def nouns(tokens: Sequence[str]) -> np.ndarray:
    """Returns (n, n): every token attends to the nouns and proper nouns."""
    return key_is(tokens, NOUNS)


def verbs(tokens: Sequence[str]) -> np.ndarray:
    """Returns (n, n): every token attends to the verbs and auxiliaries."""
    return key_is(tokens, VERBS)


def _previous_of(tokens: Sequence[str], kinds) -> np.ndarray:
    a, n = annotation(tokens), len(tokens)
    out, last, start = np.zeros((n, n)), -1, 0
    for i in range(n):
        if i and (a.word[i] < 0 or a.word[i] != a.word[i - 1]):
            start = i   # the first piece of token i's word
        if last >= 0:
            out[i, last] = 1.0
        if a.pos[i] in kinds and (i + 1 >= n or a.word[i + 1] != a.word[i]):
            last = start   # the word ends here: later tokens look back to its first piece
    return out


def previous_noun(tokens: Sequence[str]) -> np.ndarray:
    """Returns (n, n): every token attends to the first piece of the nearest earlier noun (before its own word)."""
    return _previous_of(tokens, NOUNS)


def previous_verb(tokens: Sequence[str]) -> np.ndarray:
    """Returns (n, n): every token attends to the first piece of the nearest earlier verb (before its own word)."""
    return _previous_of(tokens, VERBS)
