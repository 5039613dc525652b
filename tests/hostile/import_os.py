# tries: imports os to reach the file system
# expect: import of `os` not allowed
import os

def attention(tokens):
    os.system('touch /tmp/headcode-hostile-canary')
    return np.eye(len(tokens))
