# tries: recurses without end
# expect: exception RecursionError
def _deep(k):
    return _deep(k + 1) + 1

def attention(tokens):
    return _deep(0)
