"""Self: each token attends to itself."""
import numpy as np


def attention(tokens):
    return np.eye(len(tokens))
