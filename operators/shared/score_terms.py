"""The vocabulary of scored programs: score terms, each a prelude expression with a one-line meaning.

    sink(tokens)                                   on the first token
    steps_back(tokens, 2)                          on the token two back
    key_is(tokens, "DET")                          on a determiner
    head_matrix(tokens)                            if the key is the query word's head
    query_is(tokens, "NOUN") * key_is(tokens, "DET")   from a noun: on a determiner

`features` are the key terms, the same for every query: position and token-kind terms always,
the linguistic ones (the key word's part of speech and relation, dependency arcs, chunks,
clauses) where the `headcode[linguistic]` extra is installed. With the extra, any key term may
also be conditioned on the query word's part of speech (`conditioned`, for the kinds `queries` gives):
what a noun looks at need not be what a verb looks at. A meaning is what a positive weight rewards.
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
    query: str = ""            # the query word's part of speech the term is conditioned on ("" every query)
    key: "Feature | None" = dataclasses.field(compare=False, repr=False, default=None)  # the term conditioned
    definition: str = dataclasses.field(compare=False, repr=False, default="")  # an invented term's function
                                                                                # (evo.terms), which programs carry


def _call(name: str, meaning: str, *args, linguistic: bool = False) -> Feature:
    shown = "".join(f", {a!r}".replace("'", '"') for a in args)
    return Feature(f"{name}(tokens{shown})", meaning, linguistic,
                   lambda t, f=getattr(prelude, name): f(t, *args))


def affinity(model: str, layer: int, head: int) -> Feature:
    """Returns the head's own affinity between tokens read alone (evo.affinity): the one term read off the model."""
    return _call("affinity", "on the keys this head favours for the tokens' identities alone", model, layer, head)


def affinity_at_distance(model: str, layer: int, head: int) -> Feature:
    """Returns the head's own affinity at each pair's distance apart (evo.affinity, a rotary model's)."""
    return _call("affinity_at_distance", "on the keys this head favours for the two tokens and their distance apart",
                 model, layer, head)


def affinity_in_context(model: str, layer: int, head: int, context: int) -> Feature:
    """Returns the head's own affinity with each token read beside the `context` tokens before it (evo.affinity)."""
    before = "the token" if context == 1 else f"the {context} tokens"
    return _call("affinity_in_context", f"on the keys this head favours for the two tokens, each read beside {before} "
                 "before it", model, layer, head, context)


def conditioned(query: str, key: Feature) -> Feature:
    """Returns the key term restricted to queries whose word is a `query` part of speech."""
    return Feature(f'query_is(tokens, "{query}") * {key.expr}', f"from {article(query)}: {key.meaning}", True,
                   lambda t: prelude.query_is(t, query) * key.compute(t), query, key, key.definition)


def queries(linguistic: bool) -> tuple[str, ...]:
    """Returns the parts of speech a key term may be conditioned on (none without the extra)."""
    return POS if linguistic else ()


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
             ("word_endings", "on tokens that close a word"),
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


def article(kind: str) -> str:
    """Returns the part of speech in words, with its article: "a noun", "an adjective"."""
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
    return out + [_call("key_is", f"on {article(q)}", q, linguistic=True) for q in POS]


def features(linguistic: bool, causal: bool = True) -> list[Feature]:
    """Returns the key terms available: the base ones (and keys ahead, for an encoder), and the
    linguistic ones when wanted."""
    return _base() + ([] if causal else _ahead()) + (_linguistic() if linguistic else [])


def values(feature: Feature, tokens: list[str]) -> np.ndarray:
    """Returns the feature's (n, n) matrix for one sentence, computed by the prelude."""
    return np.asarray(feature.compute(list(tokens)), dtype=np.float64)
