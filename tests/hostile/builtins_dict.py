# tries: reaches the real open() through __builtins__
# expect: name `__builtins__` not allowed
def attention(tokens):
    __builtins__['open']('/tmp/headcode-hostile-canary', 'w').write('x')
    return np.eye(len(tokens))
