# tries: returns a 3000 x 3000 matrix for a short sentence
# expect: wrong shape (3000, 3000) for 5 tokens on sentence 0
def attention(tokens):
    return np.zeros((3000, 3000))
