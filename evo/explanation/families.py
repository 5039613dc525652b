"""Head families: one name per head, read off its measured shares (evo.explanation.shares).

In order, the first rule that holds names the family ("the rest" is the head's attention off
the first token, 1 - first):

    sink             first-token share >= SINK (0.8): almost all of it on the first token
    previous-token   previous-token share >= MOST (0.5) of all its attention
    self, previous-token, duplicate-token, induction, delimiter, syntactic
                     the pattern with the largest share of the rest, if that share reaches its
                     threshold (DOMINANT: 0.5 for self and previous, 0.4 for the others)
    local            self + previous + next + 2-4 away >= LOCAL (0.6) of the rest
    part-of-speech   one word class of the key gets >= POS_SHARE (0.4) of the rest and at least
                     POS_RATIO (2) times what attention spread evenly would give it
    content          the key the head's affinity ranks first (what the tokens' identities alone
                     favour) gets >= CONTENT_SHARE (0.3) of the rest and at least CONTENT_RATIO (2)
                     times what attention spread evenly would give it (where the affinities are kept)
    mixed            none of the above

Most heads of a decoder park part of their attention on the first token: for them the family
names what they do with the rest, and the account states the sink's share.
"""

from __future__ import annotations

import numpy as np

from evo.explanation import patterns, shares

NAMES = ("sink", "previous-token", "self", "local", "duplicate-token", "induction", "delimiter", "syntactic",
         "part-of-speech", "content", "mixed")
SINK = 0.8
MOST = 0.5
LOCAL = 0.6
POS_SHARE = 0.4
POS_RATIO = 2.0
CONTENT_SHARE = 0.3
CONTENT_RATIO = 2.0
DOMINANT = {"self": ("self", 0.5), "previous": ("previous-token", 0.5), "duplicate": ("duplicate-token", 0.4),
            "induction": ("induction", 0.4), "delimiter": ("delimiter", 0.4), "dependency": ("syntactic", 0.4)}
_P = {name: k for k, name in enumerate(patterns.NAMES)}


def family(head: np.ndarray, word_class: tuple[np.ndarray, np.ndarray] | None = None,
           content: tuple[float, float] | None = None) -> str:
    """Returns the family of a head from its pattern shares (P,) and, when measured, its key-class
    shares (C,) with the even spread's (C,), and its share on its favoured keys with the even spread's."""
    first = float(head[_P["first"]])
    if first >= SINK:
        return "sink"
    if head[_P["previous"]] >= MOST:
        return "previous-token"
    rest = max(1.0 - first, 1e-9)
    ranked = sorted(DOMINANT, key=lambda p: -head[_P[p]])
    for p in ranked:
        name, floor = DOMINANT[p]
        if head[_P[p]] / rest >= floor:
            return name
        break
    near = sum(head[_P[p]] for p in ("self", "previous", "next", "local"))
    if near / rest >= LOCAL:
        return "local"
    if selective_class(word_class) is not None:
        return "part-of-speech"
    if selective_content(content):
        return "content"
    return "mixed"


def selective_content(content: tuple[float, float] | None) -> bool:
    """Returns whether a head's share on the keys its affinity favours, (share, even spread's), passes
    CONTENT_SHARE and CONTENT_RATIO."""
    if content is None:
        return False
    own, even = content
    return own >= CONTENT_SHARE and own >= CONTENT_RATIO * even


def selective_class(word_class: tuple[np.ndarray, np.ndarray] | None) -> tuple[str, float, float] | None:
    """Returns (class, its share of the rest, the even spread's share) for the word class a head
    selects, or None when no class passes POS_SHARE and POS_RATIO."""
    if word_class is None:
        return None
    own, even = word_class
    ratio = own / np.maximum(even, 1e-9)
    ok = (own >= POS_SHARE) & (ratio >= POS_RATIO)
    if not ok.any():
        return None
    c = int(np.argmax(np.where(ok, own, -1.0)))
    return shares.CLASSES[c], float(own[c]), float(even[c])


def all_of(head_shares: np.ndarray, word_classes: tuple[np.ndarray, np.ndarray] | None,
           content: tuple[np.ndarray, np.ndarray] | None = None) -> list[str]:
    """Returns the family of every head: shares (K, P), key-class shares ((K, C), (C,)) or None, content
    shares ((K,), (K,)) or None."""
    out = []
    for k in range(len(head_shares)):
        wc = None if word_classes is None else (word_classes[0][k], word_classes[1])
        favoured = None if content is None else (float(content[0][k]), float(content[1][k]))
        out.append(family(head_shares[k], wc, favoured))
    return out
