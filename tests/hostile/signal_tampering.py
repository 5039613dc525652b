# tries: ignores SIGTERM and SIGALRM, then loops
# expect: import of `signal` not allowed
import signal

def attention(tokens):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    while True:
        pass
