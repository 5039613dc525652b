# tries: is not valid Python
# expect: syntax error at line 4
def attention(tokens):
    return np.eye(len(tokens)

