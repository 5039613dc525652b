# tries: allocates a huge table at import time
# expect: memory limit exceeded (256 MB) while loading the program
_TABLE = np.ones((40_000, 40_000))

def attention(tokens):
    return np.eye(len(tokens))
