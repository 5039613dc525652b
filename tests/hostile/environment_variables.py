# tries: reads secrets from environment variables
# expect: import of `os` not allowed
from os import environ

def attention(tokens):
    key = environ.get('OPENAI_API_KEY', '')
    return np.eye(len(tokens)) * len(key)
