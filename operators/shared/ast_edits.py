"""AST helpers for the symbolic operators: parsing, renaming, pruning, imports."""

import ast
import copy

ENTRY = "attention"


class NotApplicable(Exception):
    """An edit that does not apply to this program (the operator then tries another)."""


def parse(source: str) -> ast.Module:
    """Returns the module's AST, or raises NotApplicable when it does not parse."""
    try:
        return ast.parse(source)
    except SyntaxError as err:
        raise NotApplicable(f"parent does not parse: {err.msg} at line {err.lineno}") from None


def entry(tree: ast.Module) -> ast.FunctionDef:
    """Returns the module's `attention` function, or raises NotApplicable."""
    defs = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == ENTRY]
    if len(defs) != 1:
        raise NotApplicable(f"expected exactly one top-level `{ENTRY}`, found {len(defs)}")
    return defs[0]


def docstring_free(body: list[ast.stmt]) -> list[ast.stmt]:
    """Returns body without a leading docstring."""
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:]
    return body


def defined_name(stmt: ast.stmt) -> str | None:
    """Returns the single name a top-level def or simple assignment binds, else None."""
    if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
        return stmt.name
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return stmt.target.id
    return None


def import_bindings(stmts: list[ast.stmt]) -> dict[str, tuple[str, str | None]]:
    """Returns bound name -> (module, attribute or None) for top-level imports."""
    out = {}
    for stmt in stmts:
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                out[a.asname or a.name.split(".")[0]] = (a.name if a.asname else a.name.split(".")[0], None)
        elif isinstance(stmt, ast.ImportFrom):
            if stmt.level:
                raise NotApplicable("relative imports are not allowed in programs")
            for a in stmt.names:
                if a.name == "*":
                    raise NotApplicable("star imports cannot be merged")
                out[a.asname or a.name] = (stmt.module, a.name)
    return out


def import_stmts(bindings: dict[str, tuple[str, str | None]]) -> list[ast.stmt]:
    """Returns grouped import statements for the bindings, in a stable order."""
    plain, froms = [], {}
    for name, (module, attr) in sorted(bindings.items(), key=lambda kv: (kv[1][0], kv[0])):
        if attr is None:
            plain.append(ast.Import(names=[ast.alias(module, None if name == module else name)]))
        else:
            froms.setdefault(module, []).append(ast.alias(attr, None if name == attr else name))
    plain.sort(key=lambda s: s.names[0].name)
    return plain + [ast.ImportFrom(module=m, names=a, level=0) for m, a in sorted(froms.items())]


class _Renamer(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def visit_Name(self, node):
        node.id = self.mapping.get(node.id, node.id)
        return node

    def visit_arg(self, node):
        node.arg = self.mapping.get(node.arg, node.arg)
        return node

    def visit_FunctionDef(self, node):
        node.name = self.mapping.get(node.name, node.name)
        self.generic_visit(node)
        return node

    def visit_Global(self, node):
        node.names = [self.mapping.get(n, n) for n in node.names]
        return node

    visit_Nonlocal = visit_Global


def rename(nodes, mapping: dict[str, str]):
    """Renames every identifier in `mapping` throughout the nodes, in place."""
    renamer = _Renamer(mapping)
    for node in nodes:
        renamer.visit(node)


def fresh(base: str, taken: set[str]) -> str:
    """Returns `base`, or `base_2`, `base_3`, ... whichever is not taken."""
    if base not in taken:
        return base
    i = 2
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"


def all_identifiers(nodes) -> set[str]:
    """Returns every identifier used or bound anywhere in the nodes."""
    return set().union(*(bound_names(n) | loaded_names(n) for n in nodes)) if nodes else set()


def bound_names(node: ast.AST) -> set[str]:
    """Returns every name the node binds at any depth: assignments, parameters, defs, imports."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Load):
            names.add(sub.id)
        elif isinstance(sub, ast.arg):
            names.add(sub.arg)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(sub.name)
        elif isinstance(sub, ast.alias):
            names.add(sub.asname or sub.name.split(".")[0])
    return names


def loaded_names(node: ast.AST) -> set[str]:
    """Returns the names the node reads."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def prune(defs: list[ast.stmt], roots: set[str]) -> list[ast.stmt]:
    """Returns the top-level defs reachable from the root names, in their original order."""
    by_name = {defined_name(s): s for s in defs if defined_name(s)}
    keep, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in keep or name not in by_name:
            continue
        keep.add(name)
        todo.extend(loaded_names(by_name[name]))
    return [s for s in defs if defined_name(s) is None or defined_name(s) in keep]


def clone(node):
    """Returns a deep copy of the node."""
    return copy.deepcopy(node)


def unparse(tree: ast.Module) -> str:
    """Returns readable source for the module (PEP 8 blank lines), ending in a newline."""
    ast.fix_missing_locations(tree)
    out = ""
    has_doc = docstring_free(tree.body) != tree.body
    for i, stmt in enumerate(tree.body):
        text = ast.unparse(ast.Module(body=[stmt], type_ignores=[]) if i == 0 and has_doc else stmt)
        if i:
            compact = isinstance(stmt, (ast.Import, ast.ImportFrom)) and \
                (isinstance(tree.body[i - 1], (ast.Import, ast.ImportFrom)) or (i == 1 and has_doc))
            out += "\n" if compact else "\n\n\n"
        out += text
    return out + "\n"


def parent_map(tree: ast.AST) -> dict[int, ast.AST]:
    """Returns id(node) -> its parent node, for every node under the tree."""
    return {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def replace_node(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    """Replaces the child `old` of `parent` with `new`, in place."""
    for field, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, field, new)
            return
        if isinstance(value, list) and any(v is old for v in value):
            value[[i for i, v in enumerate(value) if v is old][0]] = new
            return
    raise AssertionError("old is not a child of parent")


def top_level_names(tree: ast.Module) -> set[str]:
    """Returns the names the module binds at top level (defs, assignments, imports)."""
    body = tree.body
    names = {ast_name for s in body if (ast_name := defined_name(s))}
    return names | set(import_bindings([s for s in body if isinstance(s, (ast.Import, ast.ImportFrom))]))


def local_names(fn: ast.FunctionDef) -> set[str]:
    """Returns the names a function binds: parameters, assignments, loop and comprehension targets."""
    names = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
    names |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    names |= {s.name for s in ast.walk(fn) if isinstance(s, ast.FunctionDef) and s is not fn}
    return names
