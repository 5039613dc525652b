"""Next token (bidirectional models): each token attends to the token just after it; the last to itself."""
from evo.prelude import one_hot


def attention(tokens):
    n = len(tokens)
    return one_hot(n, [min(i + 1, n - 1) for i in range(n)])
