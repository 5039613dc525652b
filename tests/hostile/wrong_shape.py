# tries: returns n x (n + 1)
# expect: wrong shape (5, 6) for 5 tokens on sentence 0
def attention(tokens):
    n = len(tokens)
    return np.ones((n, n + 1))
