# tries: swallows every exception, including KeyboardInterrupt and SystemExit, while looping
# expect: timeout after 1 s on sentence 0
def attention(tokens):
    while True:
        try:
            while True:
                pass
        except BaseException:
            continue
