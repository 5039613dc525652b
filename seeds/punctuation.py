"""Punctuation: attend evenly to every punctuation mark so far, else to the first token."""
import numpy as np
from evo.prelude import columns, is_punct


def attention(tokens):
    a = np.tril(columns(tokens, is_punct))
    a[a.sum(axis=1) == 0, 0] = 1.0
    return a
