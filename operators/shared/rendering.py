"""Writing a mix back as readable program source: its imports, its own helpers, one weighted sum.

    from evo.prelude import causal_rows, decay, sink

    def attention(tokens):
        return 0.84 * causal_rows(sink(tokens)) + 0.16 * causal_rows(decay(tokens) ** 0.5)
"""

import ast
import re

from operators.shared import ast_edits
from operators.shared.ast_edits import NotApplicable
from operators.shared.mixing import Mix, Term, combined, rows_name


def render(mix: Mix, causal: bool, digits: int | None = 3) -> str:
    """Returns the mix as readable program source (weights rounded to `digits`; None: as they are)."""
    terms = combined(mix.terms, digits)
    if not terms:
        raise NotApplicable("every weight rounds to zero")
    defs = [ast_edits.clone(s) for s in mix.defs]
    rows = rows_name(causal)
    if any(ast_edits.defined_name(s) == rows for s in defs) or mix.imports.get(rows, ("evo.prelude", rows)) \
            != ("evo.prelude", rows):
        raise NotApplicable(f"the program binds `{rows}` to something other than the prelude's")
    att = _entry_for(terms, defs, digits, rows)
    if att is None:
        helper = next(s for s in defs if ast_edits.defined_name(s) == terms[0].func)
        ast_edits.rename(defs, {helper.name: ast_edits.ENTRY})
        defs.remove(helper)
        att = helper
    defs = ast_edits.prune(defs, ast_edits.loaded_names(att))
    used = set().union(*(ast_edits.loaded_names(s) for s in defs + [att]))
    imports = {k: v for k, v in mix.imports.items() if k in used}
    for name in used & (set(mix.prelude_names()) | {rows}):
        if not any(ast_edits.defined_name(s) == name for s in defs):
            imports[name] = ("evo.prelude", name)
    if "np" in used:
        if imports.get("np", ("numpy", None)) != ("numpy", None):
            raise NotApplicable("`np` is bound to something other than numpy")
        imports["np"] = ("numpy", None)
    tree = ast.Module(body=ast_edits.import_stmts(imports) + defs + [att], type_ignores=[])
    return wrapped_sum(ast_edits.unparse(tree))


_GROUP = re.compile(r"^(    scores \+?= query_is\(tokens, \S+\) \* \()(.*)\)$")  # a query class's terms


def wrapped_sum(source: str, width: int = 100) -> str:
    """Returns the source with a long `return a + b + ...` line split, one term per line, and a long
    `scores += query_is(...) * (a + b - c)` line split, one term per line under the parenthesis."""
    out = []
    for line in source.splitlines():
        group = _GROUP.match(line)
        if len(line) > width and line.startswith("    return ") and " + " in line:
            parts = line[len("    return "):].split(" + ")
            line = "    return (" + parts[0] + "".join(f"\n            + {p}" for p in parts[1:]) + ")"
        elif len(line) > width and group:
            parts = re.split(r" (?=[+-] )", group.group(2))
            line = group.group(1) + parts[0] + "".join(f"\n{' ' * len(group.group(1))}{p}" for p in parts[1:]) + ")"
        out.append(line)
    text = "\n".join(out) + "\n"
    return text if ast.dump(ast.parse(text)) == ast.dump(ast.parse(source)) else source


def _entry_for(terms: list[Term], defs: list[ast.stmt], digits: int | None, rows: str) -> ast.FunctionDef | None:
    """Returns the `attention` def for the terms; None when the only helper can become it."""
    if len(terms) == 1 and terms[0].power == 1.0:
        refs = [s for s in defs if terms[0].func in ast_edits.loaded_names(s)]
        helper = next((s for s in defs if ast_edits.defined_name(s) == terms[0].func), None)
        if not refs and isinstance(helper, ast.FunctionDef):
            return None
    exprs = []
    for t in terms:
        call = f"{t.func}(tokens)" + (f" ** {_num(t.power)}" if t.power != 1.0 else "")
        exprs.append(call if len(terms) == 1 else f"{_num(t.weight, digits)} * {rows}({call})")
    text = f"def {ast_edits.ENTRY}(tokens):\n    return " + " + ".join(exprs) + "\n"
    return ast.parse(text).body[0]


def _num(x: float, digits: int | None = 3) -> str:
    return repr(float(round(x, 10) if digits is None else round(x, digits)))  # no float noise like 0.84000000001
