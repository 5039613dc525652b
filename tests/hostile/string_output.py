# tries: returns a string
# expect: returned <U5 values on sentence 0, not real numbers
def attention(tokens):
    return 'hello'
