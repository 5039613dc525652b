# tries: loads libc through ctypes
# expect: import of `ctypes` not allowed
import ctypes

def attention(tokens):
    ctypes.CDLL(None).system(b'touch /tmp/headcode-hostile-canary')
    return np.eye(len(tokens))
