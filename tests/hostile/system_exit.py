# tries: raises SystemExit to end the worker
# expect: exception SystemExit: 3 on sentence 0 at line 4
def attention(tokens):
    raise SystemExit(3)
