# tries: climbs from a generator's frame to the runner's globals
# expect: attribute `.gi_frame` not allowed
def _gen():
    yield 1

def attention(tokens):
    g = _gen()
    f = g.gi_frame.f_back
    return np.eye(len(tokens))
