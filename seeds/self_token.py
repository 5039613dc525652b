"""Self: each token attends to itself."""
from evo.prelude import self_token


def attention(tokens):
    return self_token(tokens)
