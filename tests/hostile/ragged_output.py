# tries: returns rows of different lengths
# expect: exception ValueError
def attention(tokens):
    return [[1.0] * (i + 1) for i in range(len(tokens))]
