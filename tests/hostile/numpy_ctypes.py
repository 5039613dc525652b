# tries: reaches raw memory through ndarray.ctypes
# expect: attribute `.ctypes` not allowed
def attention(tokens):
    a = np.eye(len(tokens))
    p = a.ctypes.data
    return a
