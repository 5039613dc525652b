"""Recency decay: attention to earlier tokens halves with each step back."""
import numpy as np


def attention(tokens):
    pos = np.arange(len(tokens))
    back = pos[:, None] - pos[None, :]   # (n, n) how far j lies before i
    return np.where(back >= 0, 0.5 ** back, 0.0)
