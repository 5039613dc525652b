"""Point edits on one program's AST: constants, offsets, predicates, comparisons, helpers.

Each edit takes a parsed module and a generator, changes the module in place, and
returns a one-line description; it raises NotApplicable when the program offers no site.
"""

import ast
import builtins

import numpy as np

from evo import prelude
from operators.shared import ast_edits, mixing
from operators.shared.ast_edits import NotApplicable

# str methods that are predicates on a token, interchangeable with one another.
STR_PREDICATES = ("isalpha", "isdigit", "isupper", "islower", "istitle", "isspace", "isalnum")

_FLIPS = {
    ast.Lt: (ast.LtE, ast.Gt), ast.LtE: (ast.Lt, ast.GtE), ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE), ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,), ast.NotIn: (ast.In,), ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
}
_SCALES = (0.5, 0.8, 1.25, 2.0)
_PROTECTED = {mixing.ROWS}  # infrastructure helpers whose constants are not search space


def predicates() -> tuple[str, ...]:
    """Returns the prelude's one-argument token predicates (`is_punct`, `is_delimiter`, ...)."""
    return tuple(n for n in prelude.__all__ if n.startswith("is_") and n not in prelude.LINGUISTIC)


def _editable(tree: ast.Module):
    """Yields every node outside the docstrings and the protected helpers."""
    for stmt in ast_edits.docstring_free(tree.body):
        if ast_edits.defined_name(stmt) in _PROTECTED or isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        yield from ast.walk(stmt)


def _numbers(tree: ast.Module) -> list[ast.Constant]:
    return [n for n in _editable(tree) if isinstance(n, ast.Constant) and type(n.value) in (int, float)]


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _short(x: float) -> float:
    """Returns x rounded to 3 significant digits, so constants stay readable."""
    return float(f"{x:.3g}")


def change_constant(tree: ast.Module, rng: np.random.Generator) -> str:
    """Scales or nudges one numeric constant; ints stay ints and never change sign."""
    sites = _numbers(tree)
    if not sites:
        raise NotApplicable("no numeric constant to change")
    node = _pick(rng, sites)
    old = node.value
    if type(old) is int:
        options = sorted({old + 1, old - 1, old * 2, old // 2} - {old})
        options = [v for v in options if (v >= 0) == (old >= 0)] or [old + 1]
        node.value = int(_pick(rng, options))
    elif rng.random() < 0.7 or old == 0:
        node.value = _short(old * _pick(rng, _SCALES)) if old else _pick(rng, [0.1, 0.5, 1.0])
    else:
        node.value = _short(old + _pick(rng, [-0.1, 0.1]) * max(abs(old), 0.1))
    if node.value == old:
        raise NotApplicable(f"constant {old!r} cannot move")
    return f"{old!r} -> {node.value!r}"


def shift_offset(tree: ast.Module, rng: np.random.Generator) -> str:
    """Moves an offset or window size by one (`i - 1` -> `i - 2`), or offsets an index."""
    parents = ast_edits.parent_map(tree)
    offsets = [n for n in _numbers(tree) if type(n.value) is int and _is_offset(n, parents.get(id(n)))]
    indices = [n for n in _editable(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
               and _in_index(n, parents)]
    if not offsets and not indices:
        raise NotApplicable("no offset, window size or index to shift")
    node = _pick(rng, offsets + indices)
    step = int(_pick(rng, [-1, 1]))
    if isinstance(node, ast.Name):
        op = ast.Sub() if step < 0 else ast.Add()
        ast_edits.replace_node(parents[id(node)], node, ast.BinOp(ast.Name(node.id, ast.Load()), op, ast.Constant(1)))
        return f"{node.id} -> {node.id} {'-' if step < 0 else '+'} 1"
    old = node.value
    node.value = old + step if old + step >= 0 else old + 1
    parent = parents[id(node)]
    if node.value == 0 and isinstance(parent, ast.BinOp) and parent.right is node:
        ast_edits.replace_node(parents[id(parent)], parent, parent.left)
    return f"offset {old} -> {node.value}"


def _is_offset(node: ast.Constant, parent: ast.AST | None) -> bool:
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, (ast.Add, ast.Sub)):
        return True
    if isinstance(parent, ast.Compare):
        return True
    return isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and \
        parent.func.id in ("range", "band", "max", "min") and node in parent.args


def _in_index(node: ast.Name, parents: dict) -> bool:
    """Returns whether the name is a whole index of a subscript (`a[i, j]`, `tokens[j]`)."""
    parent = parents.get(id(node))
    if isinstance(parent, ast.Tuple):
        parent = parents.get(id(parent))
        return isinstance(parent, ast.Subscript) and isinstance(parent.slice, ast.Tuple)
    return isinstance(parent, ast.Subscript) and parent.slice is node


def swap_predicate(tree: ast.Module, rng: np.random.Generator) -> str:
    """Replaces one token predicate with another (`is_punct` -> `is_delimiter`, `.isupper()` -> `.istitle()`)."""
    preds = predicates()
    shadowed = ast_edits.top_level_names(tree) - {a.asname or a.name for s in _prelude_imports(tree) for a in s.names}
    named = [n for n in _editable(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
             and n.id in preds and n.id not in shadowed]
    methods = [n for n in _editable(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and n.func.attr in STR_PREDICATES and not n.args and not n.keywords]
    if not named and not methods:
        raise NotApplicable("no token predicate to swap")
    node = _pick(rng, named + methods)
    if isinstance(node, ast.Name):
        old, node.id = node.id, _pick(rng, [p for p in preds if p != node.id])
        _import_prelude_name(tree, node.id)
        return f"{old} -> {node.id}"
    old, node.func.attr = node.func.attr, _pick(rng, [p for p in STR_PREDICATES if p != node.func.attr])
    return f".{old}() -> .{node.func.attr}()"


def _prelude_imports(tree: ast.Module) -> list[ast.ImportFrom]:
    return [s for s in tree.body if isinstance(s, ast.ImportFrom) and s.module in ("evo.prelude", "prelude")]


def _import_prelude_name(tree: ast.Module, name: str) -> None:
    """Adds `name` to the program's prelude import, when it imports the prelude explicitly."""
    imports = _prelude_imports(tree)
    if imports and not any((a.asname or a.name) == name for s in imports for a in s.names):
        imports[0].names.append(ast.alias(name, None))


def flip_comparison(tree: ast.Module, rng: np.random.Generator) -> str:
    """Flips one comparison (`<` -> `<=`, `==` -> `!=`, `in` -> `not in`) or one `and`/`or`."""
    compares = [(n, i) for n in _editable(tree) if isinstance(n, ast.Compare)
                for i, op in enumerate(n.ops) if type(op) in _FLIPS]
    bools = [(n, None) for n in _editable(tree) if isinstance(n, ast.BoolOp)]
    if not compares and not bools:
        raise NotApplicable("no comparison or boolean operator to flip")
    node, i = _pick(rng, compares + bools)
    if i is None:
        old = type(node.op).__name__
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return f"{old.lower()} -> {type(node.op).__name__.lower()}"
    old = node.ops[i]
    node.ops[i] = _pick(rng, list(_FLIPS[type(old)]))()
    return f"{type(old).__name__} -> {type(node.ops[i]).__name__}"


def splice_condition(tree: ast.Module, donor: ast.Module, rng: np.random.Generator) -> str:
    """Replaces one condition with a condition from the donor whose names it can resolve."""
    targets = _conditions(tree)
    gifts = _conditions(donor)
    if not targets or not gifts:
        raise NotApplicable("a parent has no condition to splice")
    parents = ast_edits.parent_map(tree)
    known = ast_edits.top_level_names(tree) | set(prelude.__all__) | set(dir(builtins))
    pairs = [(t, g) for t, fn in targets for g, _ in gifts
             if ast.dump(t) != ast.dump(g) and ast_edits.loaded_names(g) <= known | ast_edits.local_names(fn)]
    if not pairs:
        raise NotApplicable("no donor condition uses only names the recipient defines")
    target, gift = _pick(rng, pairs)
    ast_edits.replace_node(parents[id(target)], target, ast_edits.clone(gift))
    for name in sorted(ast_edits.loaded_names(gift) & set(prelude.__all__)):
        if name not in ast_edits.top_level_names(tree):
            _import_prelude_name(tree, name)
    return f"`{ast.unparse(target)}` -> `{ast.unparse(gift)}`"


def _conditions(tree: ast.Module) -> list[tuple[ast.expr, ast.FunctionDef]]:
    """Returns (condition, enclosing function) for every if/while/ternary/comprehension test."""
    out = []
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name in _PROTECTED:
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.If, ast.IfExp, ast.While)):
                out.append((node.test, fn))
            elif isinstance(node, ast.comprehension):
                out.extend((cond, fn) for cond in node.ifs)
    return out


def swap_helper(tree: ast.Module, donor: ast.Module, rng: np.random.Generator) -> str:
    """Replaces one helper with the donor's differing helper of the same name."""
    mine = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name != ast_edits.ENTRY}
    known = ast_edits.top_level_names(tree) | set(prelude.__all__) | set(dir(builtins))
    options = [s for s in donor.body if isinstance(s, ast.FunctionDef) and s.name in mine
               and s.name not in _PROTECTED and ast.dump(s) != ast.dump(mine[s.name])
               and ast_edits.loaded_names(s) <= known | ast_edits.local_names(s)]
    if not options:
        raise NotApplicable("the parents share no differing helper")
    gift = _pick(rng, options)
    ast_edits.replace_node(tree, mine[gift.name], ast_edits.clone(gift))
    return f"helper {gift.name} from the other parent"
