# tries: calls __import__ to load os without an import statement
# expect: name `__import__` not allowed
def attention(tokens):
    os = __import__('os')
    os.system('touch /tmp/headcode-hostile-canary')
    return np.eye(len(tokens))
