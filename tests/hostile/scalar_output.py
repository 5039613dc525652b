# tries: returns a scalar instead of a matrix
# expect: wrong shape () for 5 tokens on sentence 0
def attention(tokens):
    return 1.0
