# tries: defines a second public function
# expect: public function or class `helper` not allowed
def helper(tokens):
    return 0

def attention(tokens):
    return np.eye(len(tokens))
