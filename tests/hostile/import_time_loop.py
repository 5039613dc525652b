# tries: runs an endless loop at import time, before attention is called
# expect: timeout after 1 s while loading the program
def _forever():
    while True:
        pass

_TABLE = _forever()

def attention(tokens):
    return np.eye(len(tokens))
