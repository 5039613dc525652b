# tries: reads a prelude function's __globals__ to reach its builtins
# expect: attribute `.__globals__` not allowed
def attention(tokens):
    b = is_punct.__globals__['__builtins__']
    b['open']('/tmp/headcode-hostile-canary', 'w')
    return np.eye(len(tokens))
