"""Weighted mixes of programs: reading, merging and writing `w1 * _rows(_a(tokens)) + ...`.

A mix program's `attention` returns one sum of weighted terms, each term a helper's output
with rows normalised (optionally raised to a power first), so a weight means the share of
each row's attention that part gets. Any other program reads as a one-term mix whose
`attention` is renamed to a private helper.
"""

import ast
import dataclasses
import re

from evo import prelude
from operators.shared import ast_edits, legacy
from operators.shared.ast_edits import NotApplicable

ROWS = "_rows"                                 # the row normaliser older programs define themselves
PRELUDE_ROWS = frozenset({"causal_rows", "rows"})  # the prelude's row normalisers (causal, bidirectional)


def rows_name(causal: bool) -> str:
    """Returns the prelude's row normaliser for a causal or bidirectional model."""
    return "causal_rows" if causal else "rows"

@dataclasses.dataclass
class Term:
    weight: float
    func: str           # a top-level helper taking the tokens
    power: float = 1.0  # applied to the helper's output before rows are normalised


@dataclasses.dataclass
class Mix:
    imports: dict       # bound name -> (module, attribute or None)
    defs: list          # top-level statements other than imports and `attention`
    terms: list
    wrapped: bool = False  # the program was not a mix: its `attention` became the one helper

    def def_named(self, name: str) -> ast.stmt | None:
        """Returns the top-level statement binding `name` (the last one, as Python binds it), if any."""
        return next((s for s in reversed(self.defs) if ast_edits.defined_name(s) == name), None)

    def pattern(self, name: str) -> str | None:
        """Returns `name` when it is the prelude's pattern of that name here (not shadowed by a def), else None."""
        if name not in prelude.PATTERNS or self.def_named(name) is not None:
            return None
        bound = self.imports.get(name)
        return name if bound is None or bound == ("evo.prelude", name) else None

    def prelude_bound(self, name: str) -> bool:
        """Returns whether `name` means the prelude's function of that name here."""
        bound = self.imports.get(name)
        return self.def_named(name) is None and (bound is None or bound == ("evo.prelude", name))

    def prelude_names(self) -> list[str]:
        """Returns the terms' functions that are the prelude's patterns."""
        return [t.func for t in self.terms if self.pattern(t.func)]

    def names(self) -> set[str]:
        """Returns every identifier the mix uses or binds."""
        return set(self.imports) | ast_edits.all_identifiers(self.defs) | {t.func for t in self.terms}


def read(source: str, causal: bool) -> Mix:
    """Returns the program as a mix: its own terms when it is one, else one term."""
    tree = ast_edits.parse(source)
    att = ast_edits.entry(tree)
    body = ast_edits.docstring_free(tree.body)
    imports = ast_edits.import_bindings([s for s in body if isinstance(s, (ast.Import, ast.ImportFrom))])
    defs = [s for s in body if not isinstance(s, (ast.Import, ast.ImportFrom)) and s is not att]
    mix = Mix(imports, defs, [])
    rows = mix.def_named(ROWS)
    if rows is not None and ast.dump(rows) != ast.dump(legacy.rows_def(causal)):
        ast_edits.rename(defs + [att], {ROWS: ast_edits.fresh(ROWS, mix.names() | {ast_edits.ENTRY})})
    terms = _terms(att, mix)
    if terms is not None:
        mix.terms = terms
    else:
        doc = ast.get_docstring(tree)
        if doc and doc.strip() and ast.get_docstring(att) is None:  # the program's own account travels with it
            att.body.insert(0, ast.Expr(ast.Constant(doc.strip().splitlines()[0])))
        att.name = ast_edits.fresh(helper_name(att), mix.names() | ast_edits.all_identifiers([att]))
        mix.defs.append(att)
        mix.terms = [Term(1.0, att.name)]
        mix.wrapped = True
    return mix


_STOPWORDS = {"a", "an", "the", "of", "to", "and", "its", "it", "each", "every", "on", "in", "by", "is", "as"}


def helper_name(fn: ast.FunctionDef) -> str:
    """Returns a name for a helper from its docstring's first words, else from the prelude helpers it calls."""
    doc = ast.get_docstring(fn) or ""
    if doc.lower().startswith("a softmax of scores:"):  # named after its strongest raise: "_first_token_scores"
        raised = [t for t in doc.split(":", 1)[1].split(";") if t.strip().startswith("+")] or [""]
        words = [w for w in re.findall(r"[a-z]+", raised[0].lower()) if w not in _STOPWORDS][:3]
        return "_" + "_".join(words + ["scores"])
    words = re.findall(r"[a-z]+", doc.split(":")[0].split(".")[0].lower())
    words = [w for w in words if w not in _STOPWORDS][:4]
    if words:
        return "_" + "_".join(words)
    used = sorted(ast_edits.loaded_names(fn) & set(prelude.__all__) - {"one_hot", "columns", "strip", "band"})
    return "_" + "_".join(c.removeprefix("is_") for c in used[:2]) if used else "_pattern"


def _terms(att: ast.FunctionDef, mix: Mix) -> list[Term] | None:
    """Returns the terms of a mix-form `attention`, or None when it is not one."""
    body = ast_edits.docstring_free(att.body)
    if len(att.args.args) != 1 or len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        return None
    param = att.args.args[0].arg
    parts, node = [], body[0].value
    while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        parts.append(node.right)
        node = node.left
    parts.append(node)
    terms = [_term(p, param, mix, single=len(parts) == 1) for p in reversed(parts)]
    return None if any(t is None for t in terms) else terms


def _term(node: ast.expr, param: str, mix: Mix, single: bool) -> Term | None:
    """Returns one `w * _rows(f(tokens) ** p)` term, or None."""
    weight = 1.0
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and _number(node.left):
        weight, node = float(node.left.value), node.right
    if _call_of(node, ROWS) and len(node.args) == 1 and mix.def_named(ROWS) is not None:
        node = node.args[0]
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in PRELUDE_ROWS
          and len(node.args) == 1 and not node.keywords and mix.prelude_bound(node.func.id)):
        node = node.args[0]
    elif not single:
        return None
    power = 1.0
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and _number(node.right):
        power, node = float(node.right.value), node.left
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords
            and len(node.args) == 1 and isinstance(node.args[0], ast.Name) and node.args[0].id == param):
        return None
    if weight < 0 or power <= 0:
        return None
    if mix.pattern(node.func.id):
        return Term(weight, node.func.id, power)
    helper = mix.def_named(node.func.id)
    if not isinstance(helper, ast.FunctionDef) or len(helper.args.args) != 1:
        return None
    return Term(weight, node.func.id, power)


def _number(node) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


def _call_of(node, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def scaled(mix: Mix, share: float) -> list[Term]:
    """Returns the mix's terms with weights rescaled to sum to `share`."""
    total = sum(t.weight for t in mix.terms)
    if total <= 0:
        raise NotApplicable("mix weights sum to zero")
    return [Term(t.weight * share / total, t.func, t.power) for t in mix.terms]


def merge(a: Mix, b: Mix, w: float) -> Mix:
    """Returns `w * a + (1 - w) * b` as one flat mix; b's helpers are shared or renamed."""
    b = Mix(dict(b.imports), ast_edits.clone(b.defs), [dataclasses.replace(t) for t in b.terms])
    imports = dict(a.imports)
    for name, target in b.imports.items():
        if imports.get(name, target) != target or a.def_named(name) is not None:
            raise NotApplicable(f"both parents bind `{name}` to different things")
        imports[name] = target
    final = _resolve_names(a, b)
    ast_edits.rename(b.defs, final)
    for t in b.terms:
        t.func = final.get(t.func, t.func)
    seen = {ast.dump(s) for s in a.defs}
    defs = a.defs + [s for s in b.defs if ast.dump(s) not in seen]
    return Mix(imports, defs, scaled(a, w) + scaled(b, 1.0 - w))


def _resolve_names(a: Mix, b: Mix) -> dict[str, str]:
    """Returns new names for b's helpers: a's name for a twin of a's helper, else one free in a."""
    names = [ast_edits.defined_name(s) for s in b.defs if ast_edits.defined_name(s)]
    temp = {n: f"zz_merge_{i}" for i, n in enumerate(names)}
    ast_edits.rename(b.defs, temp)
    pending = {temp[n]: n for n in names}
    twins = {anonymous(s): ast_edits.defined_name(s) for s in a.defs if ast_edits.defined_name(s)}
    taken = a.names() | b.names() | {ast_edits.ENTRY}
    final = {}
    while pending:
        ready = [t for t in pending if not (_refs(b, t) & (set(pending) - {t}))] or list(pending)[:1]
        for t in ready:
            stmt = b.def_named(t)
            original = pending.pop(t)
            name = twins.get(anonymous(stmt))
            if name is None:
                name = original if a.def_named(original) is None and original not in a.imports \
                    else ast_edits.fresh(original, taken)
            taken.add(name)
            ast_edits.rename(b.defs, {t: name})
            final[original] = name
    return final


def _refs(mix: Mix, name: str) -> set[str]:
    return ast_edits.loaded_names(mix.def_named(name))


def anonymous(stmt: ast.stmt) -> str:
    """Returns the statement's dump with its own bound name and docstring blanked, to spot twins."""
    stmt = ast_edits.clone(stmt)
    if isinstance(stmt, ast.FunctionDef):
        body = ast_edits.docstring_free(stmt.body)
        read = ast_edits.loaded_names(stmt)
        stmt.body = [s for s in body if not (isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(
            s.targets[0], ast.Name) and s.targets[0].id not in read and isinstance(s.value, (ast.Call, ast.Name)))] \
            or [ast.Pass()]  # an unread `n = len(tokens)` does not make a different helper
        stmt.name = ""
        return ast.dump(stmt)
    return ast.dump(stmt).replace(repr(ast_edits.defined_name(stmt)), "''", 1)


def with_pattern(mix: Mix, pattern: str, w: float, power: float = 1.0) -> Mix:
    """Returns `(1 - w) * mix + w * pattern(tokens) ** power` for a prelude pattern (`sink`, `decay`, ...)."""
    if pattern not in prelude.PATTERNS:
        raise KeyError(f"no prelude pattern {pattern!r}")
    if not mix.prelude_bound(pattern):
        raise NotApplicable(f"the program binds `{pattern}` to something other than the prelude's pattern")
    rest = scaled(mix, 1.0 - w) if mix.terms else []
    imports = dict(mix.imports, **{pattern: ("evo.prelude", pattern)})
    return Mix(imports, list(mix.defs), rest + [Term(w, pattern, power)])


def combined(terms: list[Term], digits: int | None = 3) -> list[Term]:
    """Returns the terms with equal parts summed, weights rounded, zero weights dropped, heaviest first."""
    out = {}
    for t in terms:
        key = (t.func, round(t.power, 3))
        out[key] = out.get(key, 0.0) + t.weight
    rounded = (lambda w: w) if digits is None else (lambda w: round(w, digits))
    kept = [Term(rounded(w), f, p) for (f, p), w in out.items() if rounded(w) > 0]
    return sorted(kept, key=lambda t: (-t.weight, t.func))
