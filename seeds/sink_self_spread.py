"""Sink, self and spread: half on the first token, a quarter on itself, a quarter over the prefix."""
import numpy as np
from evo.prelude import causal_uniform


def attention(tokens):
    n = len(tokens)
    a = 0.25 * (np.eye(n) + causal_uniform(n))
    a[:, 0] += 0.5
    return a
