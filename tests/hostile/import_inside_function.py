# tries: hides an import of subprocess inside the function body
# expect: import of `subprocess` not allowed
def attention(tokens):
    import subprocess
    subprocess.run(['touch', '/tmp/headcode-hostile-canary'])
    return np.eye(len(tokens))
