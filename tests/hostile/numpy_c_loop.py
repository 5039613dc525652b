# tries: hangs inside a long numpy C loop
# expect: timeout after 1 s on sentence 0
def attention(tokens):
    a = np.ones((3000, 3000))
    for _ in range(1000):
        a = np.sqrt(a @ a)
    return a
