"""The static check of untrusted programs: what a program may import, name and define.

Shared by `evo.sandbox.check` (before anything runs) and the sandbox worker (whose
run-time import hook allows the same modules). The check is the first fence, not the
only one: the worker's audit hook enforces the run-time rules whatever slips past here.
"""

from __future__ import annotations

import ast
import re

# Top-level modules a program may import (submodules included, e.g. numpy.linalg).
ALLOWED_MODULES = frozenset({
    "math", "re", "string", "itertools", "functools", "collections", "unicodedata", "numpy",
})
# Where the helper prelude may be imported from (its names are also pre-injected).
PRELUDE_MODULES = frozenset({"evo.prelude", "prelude"})

# Builtins a program may not name: code execution, files, introspection, the interpreter.
BLOCKED_NAMES = frozenset({
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "globals", "locals",
    "vars", "dir", "input", "breakpoint", "help", "exit", "quit", "memoryview", "__import__",
    "__builtins__", "__loader__", "__spec__", "__build_class__",
})

# Attributes that reach frames, code, other modules' state, files or foreign memory.
BLOCKED_ATTRS = frozenset({
    "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "gi_frame",
    "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "tb_frame", "tb_next",
    "co_code", "func_globals", "func_code", "mro", "get_field", "Formatter",
    "ctypes", "ctypeslib", "tofile", "fromfile", "memmap", "open_memmap", "load", "save",
    "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromregex",
    "DataSource", "f2py", "testing", "distutils", "system", "popen", "environ",
})

_DUNDER = re.compile(r"__\w+__")
_TOP_LEVEL = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign,
              ast.AnnAssign)


def check_source(source: str, max_chars: int) -> str | None:
    """Returns None when the source passes the static check, else the one-line reason."""
    if not isinstance(source, str):
        return f"program source must be text, not {type(source).__name__}"
    if len(source) > max_chars:
        return f"program too long: {len(source):,} characters (limit {max_chars:,})"
    if "\x00" in source:
        return "program contains a null byte"
    from evo import program  # its lock: the parser is not thread-safe on CPython 3.11
    try:
        with program.AST_LOCK:
            tree = ast.parse(source, filename="<program>")
    except SyntaxError as err:
        return f"syntax error at line {err.lineno}: {err.msg}"
    except (ValueError, RecursionError, MemoryError) as err:
        return f"program cannot be parsed: {type(err).__name__}"
    return _check_top_level(tree) or _check_nodes(tree)


def _check_top_level(tree: ast.Module) -> str | None:
    """Returns the reason the module's top level breaks the contract, or None."""
    publics = []
    for node in tree.body:
        if _is_docstring(node):
            continue
        if isinstance(node, ast.AsyncFunctionDef):
            return f"async function `{node.name}` at line {node.lineno} not allowed"
        if not isinstance(node, _TOP_LEVEL):
            what = type(node).__name__.lower()
            return (f"top-level `{what}` statement at line {node.lineno} not allowed: "
                    "only imports, functions, classes and constants (no `if __name__ ...` block)")
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            publics.append(node)
    names = [n.name for n in publics]
    if names.count("attention") == 0:
        return "no `attention(tokens)` function defined"
    if names.count("attention") > 1:
        return "`attention` defined more than once"
    extra = [n for n in names if n != "attention"]
    if extra:
        return (f"public function or class `{extra[0]}` not allowed: only `attention` is "
                "public; name helpers with a leading underscore")
    return _check_signature(next(n for n in publics if n.name == "attention"))


def _check_signature(fn: ast.AST) -> str | None:
    """Returns the reason `attention` cannot be called as attention(tokens), or None."""
    if not isinstance(fn, ast.FunctionDef):
        return "`attention` must be a function"
    a = fn.args
    required = len(a.posonlyargs) + len(a.args) - len(a.defaults)
    if required != 1 and not (required == 0 and a.vararg):
        return f"`attention` must take exactly one argument (tokens), not {required}"
    if any(d is None for d in a.kw_defaults):
        return "`attention` must not have required keyword-only arguments"
    return None


def _is_docstring(node: ast.stmt) -> bool:
    """Returns whether the statement is a bare string constant (a docstring)."""
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _check_nodes(tree: ast.Module) -> str | None:
    """Returns the first forbidden import, name, attribute or string in the tree, or None."""
    found = []
    for node in ast.walk(tree):
        reason = _check_node(node)
        if reason:
            where = (getattr(node, "lineno", 0), getattr(node, "col_offset", 0),
                     getattr(node, "end_col_offset", 0))
            found.append((where, reason))
    if not found:
        return None
    (line, _, _), reason = min(found)
    return f"{reason} (line {line})" if line else reason


def _check_node(node: ast.AST) -> str | None:
    """Returns why this one node is forbidden, or None."""
    if isinstance(node, ast.Import):
        return _check_import([a.name for a in node.names], star=False, plain=True)
    if isinstance(node, ast.ImportFrom):
        if node.level:
            return "relative import not allowed"
        reason = _check_import([node.module or ""], star=any(a.name == "*" for a in node.names),
                               plain=False)
        return reason or next((f"importing `{a.name}` not allowed" for a in node.names
                               if _blocked_name(a.name) or a.name in BLOCKED_ATTRS), None)
    if isinstance(node, ast.Name):
        return _blocked_name(node.id)
    if isinstance(node, ast.Attribute):
        if _DUNDER.fullmatch(node.attr) or node.attr in BLOCKED_ATTRS:
            return f"attribute `.{node.attr}` not allowed"
        return None
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return next((_blocked_name(n) for n in node.names if _blocked_name(n)), None)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        found = _DUNDER.search(node.value)
        return f"string mentioning `{found.group()}` not allowed" if found else None
    if isinstance(node, (ast.AsyncFunctionDef, ast.Await, ast.AsyncFor, ast.AsyncWith)):
        return "async code not allowed"
    return None


def _check_import(modules: list[str], star: bool, plain: bool) -> str | None:
    """Returns why importing these modules is forbidden, or None."""
    for name in modules:
        if name in PRELUDE_MODULES:
            if plain:
                return f"`import {name}` not allowed: use `from evo.prelude import ...`"
            continue
        if name.split(".")[0] not in ALLOWED_MODULES:
            allowed = ", ".join(sorted(ALLOWED_MODULES))
            return f"import of `{name}` not allowed (allowed: {allowed}, evo.prelude)"
        if any(part in BLOCKED_ATTRS for part in name.split(".")):
            return f"import of `{name}` not allowed"
        if star:
            return f"`from {name} import *` not allowed (only from evo.prelude)"
    return None


def _blocked_name(name: str) -> str | None:
    """Returns why a program may not use this name, or None."""
    if name in BLOCKED_NAMES:
        return f"name `{name}` not allowed"
    if _DUNDER.fullmatch(name) and name != "__name__":
        return f"name `{name}` not allowed"
    return None
