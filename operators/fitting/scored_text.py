"""Scored programs as text: reading one back as its terms, writing a fit as source and as words.

    scores = 3.1 * sink(tokens)
    scores += query_is(tokens, "NOUN") * (1.2 * key_is(tokens, "DET") + 0.5 * previous_token(tokens))
    return softmax_rows(scores)

reads back as three terms of an `operators.fitting.scored.Problem`; an account says "a softmax of scores:
+3.1 on the first token; from a noun: +1.2 on a determiner, +0.5 on the previous token".
"""

from __future__ import annotations

import ast

from operators.shared import rendering, score_terms
from operators.shared.score_terms import Feature
from operators.fitting.scored import Fit, Problem

SHOWN = 6         # terms a scored program's account spells out; more make it a table
SHOWN_TABLE = 3   # a table's strongest terms its account names


def read(source: str, problem: Problem) -> list[tuple[int, float]] | None:
    """Returns a scored program's terms as (term index, weight), or None when it is not one of this form.

    A line adds weighted terms (`scores += 1.2 * key_is(tokens, "DET")`) or a query class's group of
    them (`scores += query_is(tokens, "NOUN") * (1.2 * key_is(tokens, "DET") - 0.4 * sink(tokens))`).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    att = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "attention"]
    body = att[0].body if att else []
    body = body[1:] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body
    if len(body) < 2 or ast.unparse(body[-1]) != "return softmax_rows(scores)":
        return None
    known, found = problem.by_expr, {}
    if not _same_definitions(tree, problem):
        return None
    for k, stmt in enumerate(body[:-1]):
        first = k == 0 and isinstance(stmt, ast.Assign) and ast.unparse(stmt.targets[0]) == "scores"
        more = k > 0 and isinstance(stmt, ast.AugAssign) and isinstance(stmt.op, (ast.Add, ast.Sub)) \
            and ast.unparse(stmt.target) == "scores"
        terms = _weighted(stmt.value) if first or more else None
        if terms is None or any(ast.dump(e) not in known for _, e in terms):
            return None
        sign = -1.0 if more and isinstance(stmt.op, ast.Sub) else 1.0
        for w, e in terms:
            i = known[ast.dump(e)]
            found[i] = found.get(i, 0.0) + sign * w
    return [(i, w) for i, w in found.items() if w != 0.0] or None


def _same_definitions(tree: ast.Module, problem: Problem) -> bool:
    """Returns whether every invented term the module defines is defined as the problem's term of that name
    (a program that rewrote `_nearest_capital` is not the library's `_nearest_capital`)."""
    defined = {f"{node.name}(tokens)": node for node in tree.body if isinstance(node, ast.FunctionDef)}
    for f in problem.keys:
        if f.definition and f.expr in defined:
            if ast.dump(defined[f.expr]) != ast.dump(ast.parse(f.definition).body[0]):
                return False
    return True


def _weighted(node: ast.expr) -> list[tuple[float, ast.expr]] | None:
    """Returns a sum of weighted terms as (weight, term expression), or None when it is not one."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        left, right = _weighted(node.left), _weighted(node.right)
        if left is None or right is None:
            return None
        return left + [(-w if isinstance(node.op, ast.Sub) else w, e) for w, e in right]
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)):
        return None
    weight = _number(node.left)
    if weight is not None:
        return [(weight, node.right)]
    inner = node.left
    if isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Mult) and _number(inner.left) is not None:
        return [(_number(inner.left), ast.BinOp(inner.right, ast.Mult(), node.right))]   # 1.2 * q * k
    group = _weighted(node.right)   # query_is(...) * (1.2 * k1 + 0.4 * k2)
    return None if group is None else [(w, ast.BinOp(node.left, ast.Mult(), e)) for w, e in group]


def _number(node: ast.expr) -> float | None:
    """Returns the value of a literal number, negative ones included (`-1.8`), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return None if inner is None else -inner
    ok = isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
    return float(node.value) if ok else None


def source(result: Fit) -> str:
    """Returns the program for a fit: a line per term for every query, then a line per query class
    with its terms, then the softmax; its account as the docstring."""
    if not result.terms:
        raise ValueError("a scored program needs at least one term")
    lines = []
    for query, terms in _groups(result):
        op = "=" if not lines else "+="
        if not query:
            for f, w in terms:
                lines.append(f"    scores {op} {w:g} * {f.expr}" if op == "=" or w > 0 else
                             f"    scores -= {abs(w):g} * {f.expr}")
                op = "+="
        elif len(terms) == 1:
            (f, w), = terms
            lines.append(f"    scores {op} {w:g} * {f.expr}" if op == "=" or w > 0 else
                         f"    scores -= {abs(w):g} * {f.expr}")
        else:
            inner = f"{terms[0][1]:g} * {terms[0][0].key.expr}" + "".join(
                f" {'+' if w > 0 else '-'} {abs(w):g} * {f.key.expr}" for f, w in terms[1:])
            lines.append(f'    scores {op} query_is(tokens, "{query}") * ({inner})')
    text = account(result)
    defined = dict.fromkeys(f.definition.strip() + "\n\n\n" for f, _ in result.terms if f.definition)
    out = (f'"""{text[:1].upper() + text[1:]}."""\n\n\n' + "".join(defined) +
           "def attention(tokens):\n" + "\n".join(lines) + "\n    return softmax_rows(scores)\n")
    return rendering.wrapped_sum(out)


def _groups(result: Fit) -> list[tuple[str, list[tuple[Feature, float]]]]:
    """Returns the terms by query class: the ones for every query first, then each class's, strongest
    class first (terms keep the fit's strongest-first order)."""
    by: dict[str, list[tuple[Feature, float]]] = {}
    for f, w in result.terms:
        by.setdefault(f.query, []).append((f, w))
    shared = [("", by.pop(""))] if "" in by else []
    return shared + sorted(by.items(), key=lambda kv: -max(abs(w) for _, w in kv[1]))


def account(result: Fit) -> str:
    """Returns the fit in words, without its weights: "a softmax of scores for the first token and the
    previous token, against punctuation; from a noun: for a determiner". A table (more than SHOWN terms)
    says how many terms it has and names its SHOWN_TABLE strongest."""
    if len(result.terms) > SHOWN:
        strongest = [f.meaning for f, _ in result.terms[:SHOWN_TABLE]]
        return (f"a table of {len(result.terms)} score terms (a best fit, not a short account); strongest: "
                + "; ".join(strongest))
    parts = []
    for query, terms in _groups(result):
        inner = _signed([(f.meaning if not query else f.key.meaning, w) for f, w in terms])
        parts.append(inner if not query else f"from {score_terms.article(query)}: {inner}")
    return "a softmax of scores: " + "; ".join(parts)


def _signed(terms: list[tuple[str, float]]) -> str:
    """Returns "more attention A and B, less C": the terms a positive weight rewards, then those it penalises."""
    pro = [m for m, w in terms if w > 0]
    con = [m for m, w in terms if w < 0]
    out = ("more attention " + " and ".join(pro)) if pro else ""
    if con:
        out += (", less " if out else "less attention ") + " and ".join(con)
    return out
