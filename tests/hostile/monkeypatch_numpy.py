# tries: monkeypatches numpy, math, string and numpy's RNG to change the next program's result
# expect: ok
import math, string

np.eye = lambda *a, **k: 0
np.tril = lambda *a, **k: 0
math.pi = 3.0
string.punctuation = ''
_seeded = np.random.seed(12345)

def attention(tokens):
    return np.ones((len(tokens), len(tokens)))
