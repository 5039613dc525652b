"""Induction: attend to the token that followed an earlier copy of the previous token."""
import numpy as np


def attention(tokens):
    n = len(tokens)
    a = np.zeros((n, n))
    for i in range(1, n):
        for j in range(1, i):
            if tokens[j - 1] == tokens[i - 1]:
                a[i, j] = 1.0
    a[a.sum(axis=1) == 0, 0] = 1.0
    return a
