# tries: starts a thread that keeps running after attention returns
# expect: import of `threading` not allowed
import threading

def _spin():
    while True:
        pass

def attention(tokens):
    threading.Thread(target=_spin, daemon=True).start()
    return np.eye(len(tokens))
