# tries: spins forever in Python
# expect: timeout after 1 s on sentence 0
def attention(tokens):
    while True:
        pass
