# tries: imports a numpy file reader under another name
# expect: importing `loadtxt` not allowed
from numpy import loadtxt as _read

def attention(tokens):
    _read('/etc/passwd')
    return np.eye(len(tokens))
