# tries: reads /etc/passwd with np.fromfile
# expect: attribute `.fromfile` not allowed
def attention(tokens):
    data = np.fromfile('/etc/passwd', dtype=np.uint8)
    return np.eye(len(tokens)) * data[0]
