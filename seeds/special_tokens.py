"""Special tokens: attend to the special tokens (<bos>, [CLS], [SEP]), else to the first token."""
import numpy as np
from evo.prelude import columns, is_special


def attention(tokens):
    a = columns(tokens, is_special)
    a[a.sum(axis=1) == 0, 0] = 1.0
    return a
