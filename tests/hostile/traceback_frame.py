# tries: climbs from a traceback to the calling frames
# expect: attribute `.__traceback__` not allowed
def attention(tokens):
    try:
        1 / 0
    except ZeroDivisionError as e:
        f = e.__traceback__.tb_frame.f_back
    return np.eye(len(tokens))
