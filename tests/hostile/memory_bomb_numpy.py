# tries: allocates an 80 GB array
# expect: memory limit exceeded (256 MB) on sentence 0
def attention(tokens):
    return np.ones((100_000, 100_000))
