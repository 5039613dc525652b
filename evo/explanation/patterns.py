"""Named patterns: every (query, key) cell of a sentence gets the first pattern that claims it.

The patterns partition a sentence's visible cells, so a row's shares add up to its mass:

    first        the first token (the sink most heads park attention on)
    self         the token itself
    previous     the previous token
    next         the next token (encoders)
    duplicate    other copies of the query's own token
    induction    the token after an earlier copy of the query's token
    delimiter    punctuation marks and special tokens
    dependency   its word's dependency head or its dependents (with the linguistic extra)
    local        two to four tokens away
    rest         anything else

Order decides overlaps: a previous token that is also punctuation counts as `previous`.
"""

from __future__ import annotations

import numpy as np

from evo import prelude

NAMES = ("first", "self", "previous", "next", "duplicate", "induction", "delimiter", "dependency", "local", "rest")
PHRASES = {
    "first": "on the first token", "self": "on the token itself", "previous": "on the previous token",
    "next": "on the next token", "duplicate": "on other copies of the same token",
    "induction": "on what followed earlier copies of the token (induction)",
    "delimiter": "on punctuation and special tokens", "dependency": "on its word's dependency head or dependents",
    "local": "on the tokens 2 to 4 away", "rest": "elsewhere",
}
REST = NAMES.index("rest")


def masks(tokens: list[str], causal: bool, linguistic: bool) -> list[np.ndarray]:
    """Returns one (n, n) bool mask per name in NAMES, each cell the first pattern that claims it."""
    n = len(tokens)
    i, j = np.indices((n, n))
    same = np.array([[a == b for b in tokens] for a in tokens], dtype=bool).reshape(n, n)
    after_copy = np.zeros((n, n), dtype=bool)
    after_copy[:, 1:] = same[:, :-1] & (j[:, 1:] - 1 < i[:, 1:])
    punct = np.array([prelude.is_punct(t) or prelude.is_special(t) for t in tokens], dtype=bool)
    dependency = np.zeros((n, n), dtype=bool)
    if linguistic and n:
        heads = prelude.head_matrix(tokens) > 0
        dependency = heads | heads.T
    claims = [j == 0, j == i, j == i - 1, j == i + 1, same & (j != i), after_copy & (j != i),
              np.broadcast_to(punct[None, :], (n, n)), dependency, (abs(i - j) >= 2) & (abs(i - j) <= 4),
              np.ones((n, n), dtype=bool)]
    visible = j <= i if causal else np.ones((n, n), dtype=bool)
    free, out = visible.copy(), []
    for claim in claims:
        mine = claim & free
        out.append(mine)
        free &= ~mine
    return out


def labels(tokens: list[str], causal: bool, linguistic: bool) -> np.ndarray:
    """Returns (n, n) int: each visible cell's pattern index in NAMES (-1 where the mask hides it)."""
    out = np.full((len(tokens),) * 2, -1, dtype=np.int64)
    for p, mask in enumerate(masks(tokens, causal, linguistic)):
        out[mask] = p
    return out
