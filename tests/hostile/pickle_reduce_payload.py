# tries: returns an object whose __reduce__ would run a command if unpickled
# expect: returned object values on sentence 0, not real numbers
class _Payload:
    def __reduce__(self):
        return (print, ('unpickled!',))

def attention(tokens):
    return _Payload()
