# tries: forgets to return
# expect: returned object values on sentence 0, not real numbers
def attention(tokens):
    np.eye(len(tokens))
