# tries: reads /etc/passwd with open
# expect: name `open` not allowed
def attention(tokens):
    text = open('/etc/passwd').read()
    return np.eye(len(tokens)) * len(text)
