# tries: hangs inside C code with catastrophic regex backtracking (signals cannot interrupt it)
# expect: timeout after 1 s on sentence 0
import re

def attention(tokens):
    re.match(r'(a+)+$', 'a' * 60 + 'b')
    return np.eye(len(tokens))
