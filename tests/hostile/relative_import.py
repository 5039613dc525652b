# tries: imports a sibling module relatively
# expect: relative import not allowed
from . import sandbox

def attention(tokens):
    return np.eye(len(tokens))
