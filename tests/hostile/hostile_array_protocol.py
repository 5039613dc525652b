# tries: returns an object whose __array__ never returns
# expect: timeout after 1 s on sentence 0
class _Evil:
    def __array__(self, dtype=None, copy=None):
        while True:
            pass

def attention(tokens):
    return _Evil()
