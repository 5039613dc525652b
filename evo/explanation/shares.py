"""Shares of attention: how much of a head's (or a program's) attention mass falls on each named pattern.

For one sentence with pattern labels L (evo.explanation.patterns) and attention A (rows summing
to 1), the share of pattern p is the mean over query rows of sum_j A[i, j] [L[i, j] == p]; a
text's share is the mean over its sentences, as the IoU is averaged. The shares of a row add up
to its mass, so a head's shares add up to 1 (a program's too, but for rows it leaves empty).

Beside the patterns, `classes` measures how selective a head is for the word class of the key:
its mass on keys of each part of speech, the first token left out, against what attention spread
evenly over the same keys would put there. `content` measures how much of it goes where the tokens'
identities alone send it: its mass off the first token on the key that the head's affinity
(evo.affinity: its query of the query's token against its key of each earlier token, each token
read alone) ranks first, against the even spread's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from evo.explanation import patterns

CLASSES = ("NOUN", "VERB", "ADJ", "ADV", "DET", "ADP", "PRON", "PROPN", "AUX", "NUM", "CCONJ")


@dataclasses.dataclass(frozen=True)
class Text:
    """The sentences shares are measured on, with each sentence's pattern labels and key classes."""

    tokens: list[list[str]]
    labels: list[np.ndarray]          # (n, n) pattern index per cell, -1 hidden
    classes: list[np.ndarray] | None  # (n,) class index per key (len(CLASSES): none); None without the extra
    causal: bool
    source: str                       # what the text is, for front.json ("builtin:search, first 64 sentences")
    favoured: list[np.ndarray] | None = None   # (K, n) per head the key off the first token that the head's
                                               # affinity ranks first for each query (-1: none); None without

    @classmethod
    def of(cls, tokens: list[list[str]], causal: bool, linguistic: bool, source: str,
           affinities: list[np.ndarray] | None = None) -> "Text":
        """Returns the text measured, with each head's favoured keys where `affinities` ((K, n, n) per
        sentence, as evo.affinity keeps them) are given."""
        labels = [patterns.labels(list(t), causal, linguistic) for t in tokens]
        classes = [_key_classes(list(t)) for t in tokens] if linguistic else None
        favoured = None if affinities is None else [_favoured(a, causal) for a in affinities]
        return cls([list(t) for t in tokens], labels, classes, causal, source, favoured)


def _favoured(affinity: np.ndarray, causal: bool) -> np.ndarray:
    """Returns (K, n): per head and query, the visible key off the first token of highest affinity (-1: none)."""
    a = np.asarray(affinity, dtype=np.float64)                                   # (K, n, n)
    n = a.shape[-1]
    i, j = np.indices((n, n))
    visible = (j >= 1) & ((j <= i) if causal else True)
    masked = np.where(visible[None], a, -np.inf)
    out = np.argmax(masked, axis=-1)                                             # (K, n)
    return np.where(visible.any(axis=1)[None, :], out, -1)


def _key_classes(tokens: list[str]) -> np.ndarray:
    from evo.prelude import linguistic

    pos = linguistic.annotation(tokens).pos
    return np.array([CLASSES.index(p) if p in CLASSES else len(CLASSES) for p in pos], dtype=np.int64)


def of(text: Text, matrices) -> np.ndarray:
    """Returns (K, P) mean shares for attention `matrices`: per sentence a (K, n, n) array, in order."""
    total, count = None, 0
    for labels, m in zip(text.labels, matrices):
        m = np.asarray(m, dtype=np.float64).reshape(-1, *labels.shape)            # (K, n, n)
        onehot = (labels[None] == np.arange(len(patterns.NAMES))[:, None, None])   # (P, n, n)
        per = np.einsum("kij,pij->kp", m, onehot.astype(np.float64)) / max(len(labels), 1)
        total = per if total is None else total + per
        count += 1
    if total is None:
        raise ValueError("no sentences to measure shares on")
    return total / count


def classes(text: Text, matrices) -> tuple[np.ndarray, np.ndarray] | None:
    """Returns ((K, C) each head's share of its mass off the first token that goes to keys of each
    class, (C,) the same for attention spread evenly over the visible keys); None without the extra."""
    if text.classes is None:
        return None
    n_c = len(CLASSES) + 1
    mass, base, total, total_base = None, np.zeros(n_c), None, 0.0
    for labels, cls, m in zip(text.labels, text.classes, matrices):
        m = np.asarray(m, dtype=np.float64).reshape(-1, *labels.shape)
        visible = (labels >= 0) & (np.arange(len(cls))[None, :] > 0)             # off the first token
        onehot = (cls[None, :] == np.arange(n_c)[:, None]).astype(np.float64)      # (C, n)
        per = np.einsum("kij,ij,cj->kc", m, visible.astype(np.float64), onehot)
        even = visible / np.maximum(visible.sum(axis=1, keepdims=True), 1)
        mass = per if mass is None else mass + per
        base += np.einsum("ij,cj->c", even, onehot)
    if mass is None:
        return None
    own = mass[:, :-1] / np.maximum(mass.sum(axis=1, keepdims=True), 1e-12)
    return own, base[:-1] / max(base.sum(), 1e-12)


def content(text: Text, matrices, heads=None) -> tuple[np.ndarray, np.ndarray] | None:
    """Returns ((K,) each matrix's share of its mass off the first token that goes to the key its head's
    affinity ranks first, (K,) the same for attention spread evenly over those keys), or None when the
    text has no affinities. `matrices`: per sentence (K, n, n); `heads[k]`: matrix k's head (default k)."""
    if text.favoured is None:
        return None
    on, off, even = 0.0, 0.0, 0.0
    for fav, m in zip(text.favoured, matrices):
        m = np.asarray(m, dtype=np.float64)
        m = m.reshape(-1, *m.shape[-2:])                                         # (K, n, n)
        fav = fav[np.arange(len(m)) if heads is None else np.asarray(heads)]     # (K, n)
        n = m.shape[-1]
        i, j = np.indices((n, n))
        visible = ((j >= 1) & ((j <= i) if text.causal else True)).astype(np.float64)
        rows = fav >= 0
        rest = np.einsum("kij,ij->ki", m, visible) * rows                          # (K, n) mass off the first
        picked = np.take_along_axis(m, np.maximum(fav, 0)[..., None], axis=-1)[..., 0] * rows
        on = on + picked.sum(axis=1)
        off = off + rest.sum(axis=1)
        even = even + (rest / np.maximum(visible.sum(axis=1), 1)[None, :]).sum(axis=1)
    if np.isscalar(off):
        return None
    off = np.maximum(off, 1e-12)
    return on / off, even / off
