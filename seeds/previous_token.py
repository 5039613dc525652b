"""Previous token: each token attends to the token just before it (the first to itself)."""
from evo.prelude import one_hot


def attention(tokens):
    return one_hot(len(tokens), [max(i - 1, 0) for i in range(len(tokens))])
