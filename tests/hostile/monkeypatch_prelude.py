# tries: rebinds prelude helpers and the collections module's Counter
# expect: ok
import collections

collections.Counter = dict
_keep = word_start

def attention(tokens):
    return np.ones((len(tokens), len(tokens)))
