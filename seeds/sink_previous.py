"""Sink plus previous token: half on the first token, half on the token before."""
import numpy as np


def attention(tokens):
    n = len(tokens)
    a = 0.5 * np.eye(n, k=-1)
    a[:, 0] += 0.5
    a[0, 0] = 1.0
    return a
