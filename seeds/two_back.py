"""Two tokens back: each token attends to the token two positions earlier (else the first)."""
from evo.prelude import one_hot


def attention(tokens):
    return one_hot(len(tokens), [max(i - 2, 0) for i in range(len(tokens))])
