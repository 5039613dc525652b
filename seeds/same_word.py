"""Same word: each token attends evenly to the tokens of its own word."""
import numpy as np
from evo.prelude import word_index


def attention(tokens):
    w = np.array(word_index(tokens))
    return (w[:, None] == w[None, :]).astype(float)
