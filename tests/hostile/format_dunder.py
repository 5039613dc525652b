# tries: reads dunder attributes through str.format
# expect: string mentioning `__globals__` not allowed
def attention(tokens):
    s = '{0.__globals__}'.format(is_punct)
    return np.eye(len(tokens)) * len(s)
