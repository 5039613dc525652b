# tries: grows a Python list until memory runs out
# expect: memory limit exceeded (256 MB) on sentence 0
def attention(tokens):
    xs = []
    while True:
        xs.append('x' * 1_000_000)
