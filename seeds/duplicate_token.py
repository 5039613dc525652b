"""Duplicate token: attend to earlier copies of the current token, else to the first token."""
import numpy as np
from evo.prelude import same_token


def attention(tokens):
    a = np.tril(same_token(tokens), k=-1)
    a[a.sum(axis=1) == 0, 0] = 1.0
    return a
