# tries: maps a file into memory with np.memmap
# expect: attribute `.memmap` not allowed
def attention(tokens):
    m = np.memmap('/tmp/headcode-hostile-canary', dtype=np.float64, mode='w+', shape=(4,))
    return np.eye(len(tokens))
