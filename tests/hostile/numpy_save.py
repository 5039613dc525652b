# tries: writes a file with np.save
# expect: attribute `.save` not allowed
def attention(tokens):
    np.save('/tmp/headcode-hostile-canary', np.ones(3))
    return np.eye(len(tokens))
