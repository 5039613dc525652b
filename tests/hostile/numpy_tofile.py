# tries: writes an array to a file with ndarray.tofile
# expect: attribute `.tofile` not allowed
def attention(tokens):
    a = np.eye(len(tokens))
    a.tofile('/tmp/headcode-hostile-canary')
    return a
