"""Checks every exported or canonical program must pass: one definition per name, no dead helper, standalone."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

_RUNNER = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("prog", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
tokens = ["<bos>", "The", " cat", " sat", ",", " the", " cat", " ran", " 42", " times", "."]
out = np.asarray(mod.attention(tokens), dtype=float)
assert out.shape == (len(tokens), len(tokens)), out.shape
assert np.isfinite(out).all()
print("ok")
"""


def defined_twice(source: str) -> list[str]:
    """Returns the top-level names the program binds more than once."""
    names = [n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    names += [t.id for n in ast.parse(source).body if isinstance(n, ast.Assign) for t in n.targets
              if isinstance(t, ast.Name)]
    return sorted({n for n in names if names.count(n) > 1})


def unused_helpers(source: str) -> list[str]:
    """Returns top-level functions that nothing reaches from `attention`."""
    tree = ast.parse(source)
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    seen, todo = set(), ["attention"]
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        todo += [x.id for x in ast.walk(defs[name]) if isinstance(x, ast.Name)]
    return sorted(set(defs) - seen)


def placeholder_names(source: str) -> list[str]:
    """Returns helper names that say nothing (`_a`, `_a_2`, ...)."""
    return [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)
            and re.fullmatch(r"_a(_\d+)*", n.name)]


def runs_standalone(path) -> str | None:
    """Returns None when the file runs in a fresh interpreter with only numpy and headcode, else the error."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    python = os.path.abspath(sys.executable)   # from "/", a relative one (.venv/bin/python3) names nothing
    done = subprocess.run([python, "-I", "-c", _RUNNER, str(path)], capture_output=True, text=True,
                          timeout=60, env=env, cwd="/")
    return None if done.returncode == 0 and done.stdout.strip() == "ok" else (done.stderr.strip().splitlines()
                                                                              or ["no output"])[-1]
