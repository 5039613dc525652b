"""What older programs wrote themselves and headcode now takes from the prelude: their `_rows`
normaliser and the four simple pattern helpers, kept so that `operators.shared.mixing` and
`operators.shared.basis` recognise them in archives and exports made before the prelude patterns."""

import ast

_ROWS_SOURCE = '''
def _rows(a):
    """Returns `a` {mask}with each row scaled to sum to 1 (empty rows stay 0)."""
    a = {expr}
    s = a.sum(axis=1, keepdims=True)
    return np.divide(a, s, out=np.zeros_like(a), where=s > 0)
'''

_PATTERNS = {
    "_sink": ('Returns every token attending to the first token.',
              "a = np.zeros((n, n))\n    a[:, 0] = 1.0\n    return a"),
    "_previous": ('Returns every token attending to the one before it (the first to itself).',
                  "a = np.eye(n, k=-1)\n    a[0, 0] = 1.0\n    return a"),
    "_self": ('Returns every token attending to itself.', "return np.eye(n)"),
    "_uniform": ('Returns every token attending equally to all tokens it can see.',
                 "return {uniform}"),
}
PATTERNS = tuple(_PATTERNS)


def rows_def(causal: bool) -> ast.FunctionDef:
    """Returns the `_rows` helper for a causal or bidirectional model."""
    expr = "np.tril(np.asarray(a, dtype=float))" if causal else "np.asarray(a, dtype=float)"
    text = _ROWS_SOURCE.format(mask="causally masked, " if causal else "", expr=expr)
    return ast.parse(text).body[0]


def pattern_def(name: str, causal: bool) -> ast.FunctionDef:
    """Returns the helper function for a simple pattern."""
    doc, body = _PATTERNS[name]
    body = body.format(uniform="np.tril(np.ones((n, n)))" if causal else "np.ones((n, n))")
    text = f'def {name}(tokens):\n    """{doc}"""\n    n = len(tokens)\n    {body}\n'
    return ast.parse(text).body[0]
