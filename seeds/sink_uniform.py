"""Sink plus spread: most attention on the first token, the rest spread evenly over the prefix."""
from evo.prelude import causal_uniform


def attention(tokens):
    a = 0.4 * causal_uniform(len(tokens))
    a[:, 0] += 0.6
    return a
