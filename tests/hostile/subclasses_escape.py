# tries: walks object.__subclasses__() to find os._wrap_close and its globals
# expect: attribute `.__class__` not allowed
def attention(tokens):
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == '_wrap_close':
            cls.__init__.__globals__['system']('touch /tmp/headcode-hostile-canary')
    return np.eye(len(tokens))
