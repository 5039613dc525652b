# tries: runs code from a string with eval
# expect: name `eval` not allowed
def attention(tokens):
    eval("print('hi')")
    return np.eye(len(tokens))
