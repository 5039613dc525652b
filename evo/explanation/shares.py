"""Shares of attention: how much of a head's (or a program's) attention mass falls on each named pattern.

For one sentence with pattern labels L (evo.explanation.patterns) and attention A (rows summing
to 1), the share of pattern p is the mean over query rows of sum_j A[i, j] [L[i, j] == p]; a
text's share is the mean over its sentences, as the IoU is averaged. The shares of a row add up
to its mass, so a head's shares add up to 1 (a program's too, but for rows it leaves empty).

Beside the patterns, `classes` measures how selective a head is for the word class of the key:
its mass on keys of each part of speech, the first token left out, against what attention spread
evenly over the same keys would put there.
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

    @classmethod
    def of(cls, tokens: list[list[str]], causal: bool, linguistic: bool, source: str) -> "Text":
        labels = [patterns.labels(list(t), causal, linguistic) for t in tokens]
        classes = [_key_classes(list(t)) for t in tokens] if linguistic else None
        return cls([list(t) for t in tokens], labels, classes, causal, source)


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
