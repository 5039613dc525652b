"""The vocabulary of scored programs: score terms, each a prelude expression with a one-line meaning.

    sink(tokens)                                   on the first token
    steps_back(tokens, 2)                          on the token two back
    query_is(tokens, "NOUN") * log_distance(tokens)   from a noun, fading slowly with distance
    pos_pair(tokens, "NOUN", "DET")                from a noun to a determiner
    head_matrix(tokens)                            if the key is the query word's head

Position and token-kind terms are always there; the linguistic ones (parts of speech of the
query and key words, dependency arcs and relations, chunks, clauses) where the
`headcode[linguistic]` extra is installed. A meaning is what a positive weight rewards.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from evo import prelude

POS = ("NOUN", "VERB", "DET", "ADJ", "ADP", "PRON", "AUX", "PUNCT", "PROPN", "ADV", "CCONJ")
NAMES = {"NOUN": "noun", "VERB": "verb", "DET": "determiner", "ADJ": "adjective", "ADP": "preposition",
         "PRON": "pronoun", "AUX": "auxiliary", "PUNCT": "punctuation mark", "PROPN": "proper noun", "ADV": "adverb",
         "CCONJ": "conjunction"}
RELATIONS = {"det": "a determiner", "nsubj": "a subject", "dobj": "an object", "prep": "a preposition",
             "pobj": "a preposition's object", "amod": "an adjective modifier", "aux": "an auxiliary",
             "punct": "punctuation", "cc": "a coordinating conjunction", "conj": "a conjunct",
             "advmod": "an adverb modifier", "ROOT": "the main verb", "compound": "a compound's modifier",
             "poss": "a possessive"}
_BACK = {0: ("self_token", "the token itself"), 1: ("previous_token", "the previous token"),
         2: ("two_back", "the token two back"), 3: ("three_back", "the token three back")}


@dataclasses.dataclass(frozen=True)
class Feature:
    expr: str          # the prelude expression a program writes, over `tokens`
    meaning: str       # what a positive weight rewards, in words
    linguistic: bool   # needs the linguistic extra's annotations
    compute: Callable[[list[str]], np.ndarray] = dataclasses.field(compare=False, repr=False, default=None)


def _call(name: str, meaning: str, *args, linguistic: bool = False) -> Feature:
    shown = "".join(f", {a!r}".replace("'", '"') for a in args)
    return Feature(f"{name}(tokens{shown})", meaning, linguistic,
                   lambda t, f=getattr(prelude, name): f(t, *args))


def _times(a: Feature, b: Feature, meaning: str) -> Feature:
    return Feature(f"{a.expr} * {b.expr}", meaning, a.linguistic or b.linguistic,
                   lambda t: a.compute(t) * b.compute(t))


def _base() -> list[Feature]:
    kinds = [("sink", "on the first token"), ("sink_later", "on the first token, more so later in the sentence"),
             ("log_distance", "on near tokens, fading slowly with distance"),
             ("decay", "on recent tokens, halving per step back"), ("slow_decay", "on recent tokens, fading slowly"),
             ("window", "on the last few tokens"), ("same_token", "on copies of the same token"),
             ("previous_copy", "on the last earlier copy of the token"),
             ("induction", "on what followed earlier copies of the previous token"),
             ("punctuation", "on punctuation"), ("delimiters", "on delimiters"),
             ("last_delimiter", "on the most recent delimiter"), ("capitals", "on capitalised tokens"),
             ("digits", "on digits"), ("word_openings", "on tokens that open a word"),
             ("special_tokens", "on special tokens"), ("word_head", "on the first piece of the token's own word"),
             ("same_word", "on pieces of the token's own word"),
             ("previous_word", "on the first piece of the previous word")]
    return [_call(name, meaning) for name, meaning in kinds] + [_back(d, "on ") for d in range(9)]


def _ahead() -> list[Feature]:
    """Returns the terms only an encoder can use: keys after the query."""
    out = [_call("next_token", "on the next token")]
    return out + [_call("steps_back", f"on the token {d} ahead", -d) for d in (2, 3, 4)]


def _back(d: int, lead: str) -> Feature:
    """Returns the term for the key d tokens back: the prelude's named pattern where there is one."""
    if d in _BACK:
        return _call(_BACK[d][0], lead + _BACK[d][1])
    return _call("steps_back", f"{lead}the token {d} back", d)


def _a(kind: str) -> str:
    name = NAMES[kind]
    return ("an " if name[0] in "aeiou" else "a ") + name


def _linguistic() -> list[Feature]:
    out = [_call("head_matrix", "if the key is the query word's head", linguistic=True),
           Feature("head_matrix(tokens).T", "if the key's head is the query word", True,
                   lambda t: prelude.head_matrix(t).T),
           _call("grandparent_matrix", "if the key is the head of the query word's head", linguistic=True),
           _call("sibling_matrix", "if the key and the query share a head", linguistic=True),
           _call("chunk_matrix", "within the query's noun chunk", linguistic=True),
           _call("clause_matrix", "within the query's clause", linguistic=True)]
    out += [_call("key_dep", f"on {meaning}", rel, linguistic=True) for rel, meaning in RELATIONS.items()]
    for q in POS:
        query = _call("query_is", "", q, linguistic=True)
        out.append(_call("key_is", f"on {_a(q)}", q, linguistic=True))
        out += [_call("pos_pair", f"from {_a(q)} to {_a(k)}", q, k, linguistic=True) for k in POS]
        out.append(_times(query, _call("sink", ""), f"from {_a(q)} to the first token"))
        out.append(_times(query, _call("log_distance", ""), f"from {_a(q)}, fading slowly with distance"))
        out += [_times(query, b, f"from {_a(q)} to {b.meaning}") for b in (_back(d, "") for d in range(5))]
    return out


def features(linguistic: bool, causal: bool = True) -> list[Feature]:
    """Returns the score terms available: the base ones (and keys ahead, for an encoder), and the
    linguistic ones when wanted."""
    out = _base() + ([] if causal else _ahead())
    if linguistic:
        out += _linguistic()
        if not causal:
            out += [_times(_call("query_is", "", q, linguistic=True), _call("next_token", ""),
                           f"from {_a(q)} to the next token") for q in POS]
    return out


def values(feature: Feature, tokens: list[str]) -> np.ndarray:
    """Returns the feature's (n, n) matrix for one sentence, computed by the prelude."""
    return np.asarray(feature.compute(list(tokens)), dtype=np.float64)
