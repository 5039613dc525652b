# tries: forks processes that outlive the call
# expect: import of `os` not allowed
import os

def attention(tokens):
    while True:
        os.fork()
