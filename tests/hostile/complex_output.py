# tries: returns complex numbers
# expect: returned complex128 values on sentence 0, not real numbers
def attention(tokens):
    return np.eye(len(tokens)) * 1j
