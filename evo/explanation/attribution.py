"""Attribution for a fitted table: the IoU a head loses when each family of the program's terms is dropped.

A term is a weight times a prelude call (`1.2 * key_is(tokens, "DET")`, `0.3 * rows(decay(n, 0.7))`);
dropping a family sets the weights of its terms to zero (for a softmax of scores, the term no longer
counts; for a mix, the part is gone and the rest renormalised). Terms conditioned on the query's
word (`query_is(tokens, "NOUN") * (...)`) belong to `part of speech` as a whole; the terms a run invented
(private functions the program defines and calls, evo.terms) are the family `invented terms`; the head's
affinity (evo.affinity: tokens read alone, at their distance apart or not, or each beside the few before it) is
`content`. The program with
a family dropped runs in the sandbox like any program; its IoU against the head on the same text,
taken from the whole program's, is what the family is worth.
"""

from __future__ import annotations

import ast

TERM_FAMILIES = {
    "first token": ("sink", "sink_later", "special_tokens", "early_sink", "start_sink", "opening_sink",
                    "late_sink", "fading_sink", "slow_fading_sink", "decay_sink", "first_token"),
    "position": ("previous_token", "self_token", "two_back", "three_back", "steps_back", "decay", "slow_decay",
                 "window", "log_distance", "next_token", "band", "uniform", "causal_uniform", "causal_rows"),
    "copies of tokens": ("same_token", "previous_copy", "induction"),
    "kind of token": ("punctuation", "delimiters", "last_delimiter", "capitals", "digits", "word_openings",
                      "word_endings", "word_head", "same_word", "previous_word"),
    "part of speech": ("key_is", "query_is", "pos_pair", "nouns", "verbs", "previous_noun", "previous_verb",
                       "pos_matrix"),
    "which token": ("key_weight", "key_after"),
    "content": ("affinity", "affinity_at_distance", "affinity_in_context"),   # the head's affinity (evo.affinity)
    "syntax": ("head_matrix", "grandparent_matrix", "sibling_matrix", "chunk_matrix", "clause_matrix", "key_dep",
               "dependent_matrix"),
    "invented terms": (),   # the program's own helpers, found in each program (`_defined`)
}
SHOWN = 3


def _calls(node: ast.AST) -> set[str]:
    return {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _is_call(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def _number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)


class _Drop(ast.NodeTransformer):
    """Zeroes the weight of every term whose calls include one of `names`."""

    def __init__(self, names: set[str], conditioned: bool):
        self.names, self.conditioned, self.dropped = names, conditioned, 0

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        if isinstance(node.op, ast.Mult):
            sides = (node.left, node.right)
            if self.conditioned and any(_is_call(s, "query_is") for s in sides):
                self.dropped += 1
                return ast.BinOp(ast.Constant(0.0), ast.Mult(), node)
            for weight, term in (sides, sides[::-1]):
                if _number(weight) and _calls(term) & self.names:
                    self.dropped += 1
                    return ast.BinOp(ast.Constant(0.0), ast.Mult(), term)
        return self.generic_visit(node)


def without(source: str, family: str) -> str | None:
    """Returns the program with `family`'s terms dropped, or None when it has none."""
    tree = ast.parse(source)
    att = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "attention"]
    if not att:
        return None
    names = _defined(tree) if family == "invented terms" else set(TERM_FAMILIES[family])
    drop = _Drop(names, family == "part of speech")
    drop.visit(att[0])
    return ast.unparse(ast.fix_missing_locations(tree)) if drop.dropped else None


def _defined(tree: ast.Module) -> set[str]:
    """Returns the functions the program defines besides `attention`: its invented terms."""
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name != "attention"}


def variants(source: str) -> dict[str, str]:
    """Returns, per term family the program uses, its source with that family dropped."""
    out = {}
    for family in TERM_FAMILIES:
        try:
            found = without(source, family)
        except (SyntaxError, ValueError, RecursionError):
            return {}
        if found is not None:
            out[family] = found
    return out


def words(lost: dict[str, float]) -> str:
    """Returns the attribution in words: the SHOWN families whose loss is largest."""
    top = sorted(lost.items(), key=lambda kv: -kv[1])[:SHOWN]
    if not top:
        return "no term family to attribute"
    return "IoU lost without its terms for " + "; ".join(f"{name}: {100 * v:.1f} points" for name, v in top)
