"""First-token sink: every token attends to the first token (<bos> or [CLS])."""
from evo.prelude import sink


def attention(tokens):
    return sink(tokens)
