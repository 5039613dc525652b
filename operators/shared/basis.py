"""The basis vocabulary the fit edits mix: the prelude's patterns (evo.prelude.patterns, and
evo.prelude.linguistic's with that vocabulary).

A mix term is `w * causal_rows(sink(tokens) ** p)`; the fitter computes each pattern's
matrices here, in-process, from the prelude's own trusted code (`matrices`); untrusted
programs still only run in the sandbox. Graded patterns (decays) get their rate from the
fitted exponent: `decay(tokens) ** 2` fades by 0.25 per step. Older programs carried the
same patterns as private helpers (`def _sink(tokens): ...`); `matching` recognises those.
"""

import ast

import numpy as np

from evo import prelude
from operators.shared import legacy, mixing

_CAUSAL = {
    "_sink": ("every token attends to the first token",
              "a = np.zeros((n, n))\n    a[:, 0] = 1.0\n    return a"),
    "_early_sink": ("the first 3 tokens attend to the first token, the rest to nothing",
                    "a = np.zeros((n, n))\n    a[:3, 0] = 1.0\n    return a"),
    "_start_sink": ("the first 6 tokens attend to the first token, the rest to nothing",
                    "a = np.zeros((n, n))\n    a[:6, 0] = 1.0\n    return a"),
    "_opening_sink": ("the first 12 tokens attend to the first token, the rest to nothing",
                      "a = np.zeros((n, n))\n    a[:12, 0] = 1.0\n    return a"),
    "_late_sink": ("tokens after the first 24 attend to the first token, the rest to nothing",
                   "a = np.zeros((n, n))\n    a[24:, 0] = 1.0\n    return a"),
    "_fading_sink": ("every token attends to the first token and a quarter as much to each token it can see, "
                     "so the first token's share at position i is 5 / (5 + i)",
                     "a = {uniform} / 4\n    a[:, 0] += 1.0\n    return a"),
    "_slow_fading_sink": ("every token attends to the first token and a sixteenth as much to each token it can see, "
                          "so the first token's share at position i is 17 / (17 + i)",
                          "a = {uniform} / 16\n    a[:, 0] += 1.0\n    return a"),
    "_decay_sink": ("every token attends to the first token and a quarter as much to a 0.9 decay back, "
                    "so the first token's share falls over the first dozen positions",
                    "pos = np.arange(n)\n    back = pos[:, None] - pos[None, :]\n"
                    "    a = np.where(back >= 0, 0.9 ** np.abs(back), 0.0) / 4\n    a[:, 0] += 1.0\n    return a"),
    "_previous": ("every token attends to the one before it (the first to itself)",
                  "a = np.eye(n, k=-1)\n    a[0, 0] = 1.0\n    return a"),
    "_self": ("every token attends to itself", "return np.eye(n)"),
    "_uniform": ("every token attends equally to all tokens it can see", "return {uniform}"),
    "_two_back": ("every token attends to the token two before it", "return np.eye(n, k=-2)"),
    "_three_back": ("every token attends to the token three before it", "return np.eye(n, k=-3)"),
    "_decay": ("attention halves with each step back",
               "pos = np.arange(n)\n    back = pos[:, None] - pos[None, :]\n"
               "    return np.where(back >= 0, 0.5 ** np.abs(back), 0.0)"),
    "_slow_decay": ("attention fades by 0.9 with each step back",
                    "pos = np.arange(n)\n    back = pos[:, None] - pos[None, :]\n"
                    "    return np.where(back >= 0, 0.9 ** np.abs(back), 0.0)"),
    "_window": ("every token attends to itself and the two tokens before it", "return band(n, 2)"),
    "_same_token": ("every token attends to earlier copies of itself (and itself)",
                    "return np.tril(same_token(tokens))"),
    "_previous_copy": ("every token attends to the last earlier copy of itself",
                       "return one_hot(n, [previous_occurrence(tokens, i) for i in range(n)])"),
    "_induction": ("every token attends to what followed earlier copies of the previous token",
                   "a = np.zeros((n, n))\n    for i in range(1, n):\n        for j in range(1, i):\n"
                   "            if tokens[j - 1] == tokens[i - 1]:\n                a[i, j] = 1.0\n    return a"),
    "_punct": ("every token attends to the punctuation marks so far",
               "return np.tril(columns(tokens, is_punct))"),
    "_delimiters": ("every token attends to the delimiters so far",
                    "return np.tril(columns(tokens, is_delimiter))"),
    "_last_delimiter": ("every token attends to the most recent delimiter",
                        "return one_hot(n, most_recent(tokens, is_delimiter))"),
    "_capitals": ("every token attends to the capitalised tokens so far",
                  "return np.tril(columns(tokens, is_capitalized))"),
    "_word_starts": ("every token attends to the word starts so far",
                     "return np.tril(columns(tokens, is_word_start))"),
    "_word_head": ("every token attends to the first token of its word",
                   "return one_hot(n, word_start(tokens))"),
    "_same_word": ("every token attends to the tokens of its own word",
                   "w = np.array(word_index(tokens))\n    return np.tril(1.0 * (w[:, None] == w[None, :]))"),
    "_previous_word": ("every token attends to the first token of the previous word",
                       "heads = word_start(tokens)\n"
                       "    return one_hot(n, [heads[heads[i] - 1] if heads[i] > 0 else None for i in range(n)])"),
    "_digits": ("every token attends to the digits so far", "return np.tril(columns(tokens, is_digit))"),
    "_special": ("every token attends to the special tokens so far",
                 "return np.tril(columns(tokens, is_special))"),
}
_BIDIRECTIONAL = {"_next": ("every token attends to the one after it (the last to itself)",
                            "a = np.eye(n, k=1)\n    a[-1, -1] = 1.0\n    return a")}


# What each helper of older programs (`def _sink(tokens): ...`) is called in the prelude today.
LEGACY = {"_sink": "sink", "_early_sink": "early_sink", "_start_sink": "start_sink", "_opening_sink": "opening_sink",
          "_late_sink": "late_sink", "_fading_sink": "fading_sink", "_slow_fading_sink": "slow_fading_sink",
          "_decay_sink": "decay_sink", "_previous": "previous_token", "_self": "self_token", "_uniform": "uniform",
          "_two_back": "two_back", "_three_back": "three_back", "_decay": "decay", "_slow_decay": "slow_decay",
          "_window": "window", "_same_token": "same_token", "_previous_copy": "previous_copy",
          "_induction": "induction", "_punct": "punctuation", "_delimiters": "delimiters",
          "_last_delimiter": "last_delimiter", "_capitals": "capitals", "_word_starts": "word_openings",
          "_word_head": "word_head", "_same_word": "same_word", "_previous_word": "previous_word",
          "_digits": "digits", "_special": "special_tokens", "_next": "next_token"}


def names(causal: bool, linguistic: bool = False) -> tuple[str, ...]:
    """Returns the basis vocabulary, the prelude's patterns, for a causal or bidirectional model.

    The linguistic ones (a word's head, its dependents, noun chunks, clauses, nouns and verbs)
    join when the run's vocabulary has them.
    """
    return tuple(p for p in prelude.PATTERNS if not (causal and p == "next_token")
                 and (linguistic or p not in prelude.LINGUISTIC_PATTERNS))


def legacy_names(causal: bool) -> tuple[str, ...]:
    """Returns the names older programs gave the basis helpers they carried."""
    return tuple(_CAUSAL) + (() if causal else tuple(_BIDIRECTIONAL))


def source(name: str, causal: bool) -> str:
    """Returns an older program's helper source for a basis term (`_sink`), to recognise it."""
    table = dict(_CAUSAL, **({} if causal else _BIDIRECTIONAL))
    if name not in table:
        raise KeyError(f"no basis pattern {name!r}")
    if name in legacy.PATTERNS:  # the same text as mixing's patterns once were, so the two are twins
        return ast.unparse(legacy.pattern_def(name, causal)) + "\n"
    doc, body = table[name]
    body = body.format(uniform="np.tril(np.ones((n, n)))" if causal else "np.ones((n, n))")
    if not causal:
        body = (body.replace("np.tril(columns(", "(columns(").replace("np.tril(same_token(", "(same_token(")
                .replace("np.tril(1.0 *", "(1.0 *").replace("np.where(back >= 0, ", "(").replace(", 0.0)", ")"))
    return f'def {name}(tokens):\n    """{doc[0].upper() + doc[1:]}."""\n    n = len(tokens)\n    {body}\n'


def helper_def(name: str, causal: bool) -> ast.FunctionDef:
    """Returns an older program's helper for a basis term, as a function definition."""
    return ast.parse(source(name, causal)).body[0]


_ANONYMOUS: dict[bool, dict[str, str]] = {}


def matching(stmt: ast.stmt, causal: bool) -> str | None:
    """Returns the prelude pattern an older helper def computes (same code, whatever its name), or None."""
    if not isinstance(stmt, ast.FunctionDef):
        return None
    if causal not in _ANONYMOUS:
        _ANONYMOUS[causal] = {mixing.anonymous(helper_def(n, causal)): LEGACY[n] for n in legacy_names(causal)}
    return _ANONYMOUS[causal].get(mixing.anonymous(stmt))


def of_term(mix: mixing.Mix, func: str, causal: bool) -> str | None:
    """Returns the prelude pattern a term computes: the prelude's own, or an older helper with its code."""
    return mix.pattern(func) or matching(mix.def_named(func), causal)


def matrices(name: str, sentences: list[list[str]], causal: bool) -> list[np.ndarray]:
    """Returns the prelude pattern's raw float output for each sentence (no mask: the fitter applies it)."""
    if name not in prelude.PATTERNS:
        raise KeyError(f"no basis pattern {name!r}")
    f = getattr(prelude, name)
    return [np.asarray(f(list(tokens)), dtype=np.float64) for tokens in sentences]
