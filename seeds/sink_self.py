"""Sink plus self: half on the first token, half on the token itself."""
import numpy as np


def attention(tokens):
    a = 0.5 * np.eye(len(tokens))
    a[:, 0] += 0.5
    return a
