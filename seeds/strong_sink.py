"""Strong sink: nearly all attention on the first token, a faint even spread over the prefix."""
from evo.prelude import causal_uniform


def attention(tokens):
    a = 0.1 * causal_uniform(len(tokens))
    a[:, 0] += 0.9
    return a
