# tries: opens a network connection
# expect: import of `socket` not allowed
import socket

def attention(tokens):
    socket.create_connection(('example.com', 80))
    return np.eye(len(tokens))
