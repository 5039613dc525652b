"""The canonical form of a program: what the offline operators write and what export ships.

    each name defined once (the last definition wins, as in Python)
    identical helpers merged, and named for what they compute
    unused helpers dropped; identical terms merged, their weights added
    terms under `MIN_SHARE` of the mass dropped; weights rounded to two decimals, summing to 1
    complete imports, so the file runs with only numpy and headcode installed

`tidy` does the parts that cannot change what a program computes (every program may go
through it); `canonical` also drops small terms and rounds weights, for the mixes the
offline operators write (their fitter refits what is left first, see operators.edits.symbolic).
"""

from __future__ import annotations

import ast
import builtins
import re

from evo import prelude
from operators.shared import ast_edits, basis, mixing, rendering
from operators.shared.ast_edits import NotApplicable

MIN_SHARE = 0.02  # terms below this share of the mix's mass are dropped
DIGITS = 2        # weights are written with this many decimals
_PLACEHOLDER = re.compile(r"^_(a|pattern|softmax_scores)(_\d+)*$")  # names that say nothing


def canonical(source: str, causal: bool, min_share: float = MIN_SHARE) -> str:
    """Returns the program in canonical form; a mix loses its small terms and gets rounded weights."""
    mix = mixing.read(source, causal)
    return _plain(source) if mix.wrapped else write(mix, causal, min_share)


def write(mix: mixing.Mix, causal: bool, min_share: float = MIN_SHARE) -> str:
    """Returns the mix's source in canonical form (small terms dropped, weights rounded)."""
    mix = _prepared(mix, causal)
    mix.terms = shares(mix.terms, min_share)
    return _finish(rendering.render(mix, causal, digits=DIGITS))


def tidy(source: str, causal: bool) -> str:
    """Returns the program with the same behaviour, written canonically (names, helpers, imports)."""
    try:
        mix = mixing.read(source, causal)
    except NotApplicable:
        return source
    if mix.wrapped:
        return _plain(source)
    out = _finish(rendering.render(_prepared(mix, causal), causal, digits=None))
    doc = ast.get_docstring(ast_edits.parse(source), clean=False)
    return _with_docstring(out, doc) if doc and doc.strip() else out  # an author's account stays


def _with_docstring(source: str, doc: str) -> str:
    """Returns the source with `doc` as its module docstring."""
    tree = ast_edits.parse(source)
    tree.body.insert(0, ast.Expr(ast.Constant(doc)))
    return rendering.wrapped_sum(ast_edits.unparse(tree))


def _plain(source: str) -> str:
    """Returns a program that is not a mix with one definition per name and complete imports."""
    try:
        tree = ast_edits.parse(source)
    except NotApplicable:
        return source
    before = ast.dump(tree)
    tree.body = _last_definitions(tree.body)
    _complete_imports(tree)
    return source if ast.dump(tree) == before else rendering.wrapped_sum(ast_edits.unparse(tree))  # keep comments when nothing changed


def shares(terms: list[mixing.Term], min_share: float = MIN_SHARE,
           digits: int = DIGITS) -> list[mixing.Term]:
    """Returns the terms merged, with weights scaled to sum to 1, small ones dropped, rounded exactly to 1."""
    merged = mixing.combined(terms, digits=None)
    total = sum(t.weight for t in merged)
    if total <= 0:
        raise NotApplicable("mix weights sum to zero")
    kept = [t for t in merged if t.weight / total >= min_share] or merged[:1]
    total = sum(t.weight for t in kept)
    scale = 10 ** digits
    units = [round(t.weight / total * scale) for t in kept]
    units[0] += scale - sum(units)  # the heaviest term absorbs the rounding
    out = [mixing.Term(u / scale, t.func, t.power) for u, t in zip(units, kept) if u > 0]
    if not out:
        raise NotApplicable("every weight rounds to zero")
    return out


def _prepared(mix: mixing.Mix, causal: bool) -> mixing.Mix:
    """Returns a copy of the mix with one definition per name, twins merged and helpers named."""
    mix = mixing.Mix(dict(mix.imports), _last_definitions(ast_edits.clone(mix.defs)),
                     [mixing.Term(t.weight, t.func, t.power) for t in mix.terms])
    _merge_twins(mix)
    _to_prelude(mix, causal)
    _name_helpers(mix)
    return mix


def _to_prelude(mix: mixing.Mix, causal: bool) -> None:
    """Points terms whose helper has a prelude pattern's code at that pattern (the helper then goes unused)."""
    for t in mix.terms:
        name = None if mix.pattern(t.func) else (basis.matching(mix.def_named(t.func), causal)
                                                 or _thin_wrapper(mix, mix.def_named(t.func)))
        if name is not None and mix.prelude_bound(name):
            t.func = name
            mix.imports[name] = ("evo.prelude", name)


def _last_definitions(body: list[ast.stmt]) -> list[ast.stmt]:
    """Returns the statements with every earlier definition of a rebound name dropped."""
    last = {}
    for i, stmt in enumerate(body):
        name = ast_edits.defined_name(stmt)
        if name is not None:
            last[name] = i
    return [s for i, s in enumerate(body) if ast_edits.defined_name(s) is None
            or last[ast_edits.defined_name(s)] == i]


def _merge_twins(mix: mixing.Mix) -> None:
    """Points every term and reference at one of each set of identical helpers, until none are left."""
    while True:
        seen, mapping = {}, {}
        for stmt in mix.defs:
            name = ast_edits.defined_name(stmt)
            if not isinstance(stmt, ast.FunctionDef) or name == mixing.ROWS:
                continue
            body = mixing.anonymous(stmt)
            if body in seen:
                mapping[name] = seen[body]
            else:
                seen[body] = _preferred(name, seen.get(body))
        if not mapping:
            return
        mix.defs = [s for s in mix.defs if ast_edits.defined_name(s) not in mapping]
        ast_edits.rename(mix.defs, mapping)
        for t in mix.terms:
            t.func = mapping.get(t.func, t.func)


def _preferred(name: str, other: str | None) -> str:
    return name if other is None or (_PLACEHOLDER.match(other) and not _PLACEHOLDER.match(name)) else other


def _thin_wrapper(mix: mixing.Mix, fn) -> str | None:
    """Returns the prelude pattern a helper only passes its tokens to (`return sink(tokens)`), or None."""
    if not isinstance(fn, ast.FunctionDef) or len(fn.args.args) != 1:
        return None
    body = ast_edits.docstring_free(fn.body)
    if len(body) != 1 or not isinstance(body[0], ast.Return):
        return None
    call, param = body[0].value, fn.args.args[0].arg
    if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and not call.keywords and len(call.args) == 1
            and isinstance(call.args[0], ast.Name) and call.args[0].id == param):
        return call.func.id if mix.pattern(call.func.id) else None
    return None


def _name_helpers(mix: mixing.Mix) -> None:
    """Renames helpers whose names say nothing (`_a`, `_a_2`) after their docstring or body."""
    taken = mix.names() | {ast_edits.ENTRY} | set(prelude.__all__)
    mapping = {}
    for stmt in mix.defs:
        name = ast_edits.defined_name(stmt)
        if not isinstance(stmt, ast.FunctionDef) or name == mixing.ROWS or not _PLACEHOLDER.match(name):
            continue
        wanted = mixing.helper_name(stmt)
        if re.fullmatch(re.escape(wanted) + r"(_\d+)?", name):
            continue
        new = ast_edits.fresh(wanted, taken)
        taken.add(new)
        mapping[name] = new
    ast_edits.rename(mix.defs, mapping)
    for t in mix.terms:
        t.func = mapping.get(t.func, t.func)


def _finish(source: str) -> str:
    """Returns the rendered source with its imports completed."""
    tree = ast_edits.parse(source)
    _complete_imports(tree)
    return rendering.wrapped_sum(ast_edits.unparse(tree))


def _complete_imports(tree: ast.Module) -> None:
    """Adds `from evo.prelude import ...` (and numpy) for every helper the module uses but never binds."""
    doc = [] if ast_edits.docstring_free(tree.body) == tree.body else tree.body[:1]
    body = tree.body[len(doc):]
    imports = [s for s in body if isinstance(s, (ast.Import, ast.ImportFrom))]
    rest = [s for s in body if s not in imports]
    try:
        bound = ast_edits.import_bindings(imports)
    except NotApplicable:
        return
    defined = set().union(*(ast_edits.bound_names(s) for s in rest)) if rest else set()
    used = set().union(*(ast_edits.loaded_names(s) for s in rest)) if rest else set()
    missing = used - set(bound) - defined - set(dir(builtins))
    for name in sorted(missing):
        if name in prelude.__all__:
            bound[name] = ("evo.prelude", name)
        elif name == "np":
            bound[name] = ("numpy", None)
    tree.body = doc + ast_edits.import_stmts(bound) + rest
