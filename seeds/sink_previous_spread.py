"""Sink, previous token and spread: a third each on the first token, the previous token and the prefix."""
import numpy as np
from evo.prelude import causal_uniform


def attention(tokens):
    n = len(tokens)
    a = (causal_uniform(n) + np.eye(n, k=-1)) / 3
    a[:, 0] += 1 / 3
    return a
