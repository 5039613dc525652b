# tries: runs arbitrary statements at module level
# expect: top-level `expr` statement at line 3 not allowed
print('side effect')

def attention(tokens):
    return np.eye(len(tokens))
