# tries: builds an attribute name at run time and fetches it with getattr
# expect: name `getattr` not allowed
def attention(tokens):
    save = getattr(np, 'sa' + 've')
    save('/tmp/headcode-hostile-canary', np.ones(2))
    return np.eye(len(tokens))
