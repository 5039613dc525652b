# tries: loads a pickle through np.load(allow_pickle=True)
# expect: attribute `.load` not allowed
def attention(tokens):
    np.load('/tmp/payload.npy', allow_pickle=True)
    return np.eye(len(tokens))
