"""Induction: attend to the token that followed an earlier copy of the previous token."""
from evo.prelude import induction


def attention(tokens):
    a = induction(tokens)
    a[a.sum(axis=1) == 0, 0] = 1.0
    return a
