"""Programs as source text: their length, canonical form and identity key."""

from __future__ import annotations

import ast
import hashlib
import threading

from evo.errors import UserError

# CPython 3.11's parser is not thread-safe ("AST constructor recursion depth mismatch"):
# code that parses from more than one thread (LLM calls, the downstream cascade) holds this.
AST_LOCK = threading.RLock()

_DOCSTRING_OWNERS = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def parse(source: str) -> ast.Module:
    """Returns the module AST of `source`; a syntax error becomes a one-line ValueError."""
    try:
        return ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"syntax error at line {err.lineno}: {err.msg}") from None


def _is_docstring(node: ast.stmt) -> bool:
    """Returns whether `node` is a bare string-literal expression statement."""
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def strip_docstrings(tree: ast.Module) -> ast.Module:
    """Returns `tree` with module, function and class docstrings removed (in place)."""
    for node in ast.walk(tree):
        if isinstance(node, _DOCSTRING_OWNERS) and node.body and _is_docstring(node.body[0]):
            node.body = node.body[1:] or [ast.Pass()]
    return tree


def length(source: str) -> int:
    """Returns the number of AST nodes in `source`, docstrings and comments excluded."""
    tree = strip_docstrings(parse(source))
    # `ast.walk` also yields the expression-context singletons (Load/Store): those are
    # bookkeeping, not program text, so they do not count.
    return sum(1 for node in ast.walk(tree) if not isinstance(node, ast.expr_context))


def normalise(source: str) -> str:
    """Returns the canonical form of `source` (unparsed AST without docstrings) for de-duplication."""
    return ast.unparse(strip_docstrings(parse(source))) + "\n"


def key(source: str) -> str:
    """Returns the sha256 hex digest of `normalise(source)`; sources that fail to parse hash raw."""
    try:
        text = normalise(source)
    except ValueError:
        text = source
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def docstring(source: str) -> str | None:
    """Returns the first line of the module docstring of `source`, or None."""
    text = ast.get_docstring(parse(source))
    return text.strip().splitlines()[0] if text and text.strip() else None


def read(path) -> str:
    """Returns the text of the program file at `path`; UserError when unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read program {path}: {err}") from None
