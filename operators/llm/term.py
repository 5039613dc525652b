"""An LLM's most useful job on a small model: one score term from a concrete residual, not a whole program.

    prompt   <- the head's rows where its best program misses most (prompts/term.txt)
    reply    -> the first private function of `tokens` in it, its docstring required (evo.terms.check)
    term     -> the offline operator fits the head with it and keeps it only when it adds IoU on held-out
                rows (operators.fitting.term_edits); the child is that fit, the term in meta["term"],
                and the engine's library takes it in like any invented term

Generated code is hostile: the term is only ever run in the sandbox.
"""

from __future__ import annotations

import ast
import re

from evo import terms
from evo.errors import UserError
from operators.llm import parse
from operators.shared.ast_edits import NotApplicable


def extract(reply: str) -> parse.Parsed:
    """Returns the term function in a reply (renamed private where it was public), or why there is none."""
    blocks = parse.code_blocks(reply) or [reply]
    reason = "reply has no function of tokens"
    for block in blocks:
        source = _trimmed(block)
        if source is None:
            continue
        tree = ast.parse(source)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name != "attention":
                node.name = _private(node.name)
                found = ast.unparse(node) + "\n"
                try:
                    terms.check(found, node.name)
                except UserError as err:
                    reason = str(err)
                    continue
                return parse.Parsed(found, None, "term")
    return parse.Parsed(None, reason, "term")


def _trimmed(text: str) -> str | None:
    """Returns the text with trailing lines dropped until it parses, or None when nothing does."""
    lines = text.rstrip().split("\n")
    while lines:
        try:
            ast.parse("\n".join(lines))
            return "\n".join(lines) + "\n"
        except SyntaxError:
            lines.pop()
    return None


def _private(name: str) -> str:
    """Returns a term's name as the program contract wants a helper's: leading underscore, lower case."""
    out = "_" + re.sub(r"[^a-z0-9_]", "_", name.lower()).strip("_")
    return out[:49] if len(out) > 1 else "_llm_term"


def fitted(offline, request, source: str, head: int) -> tuple[str | None, str | None, dict]:
    """Returns (program, None, meta) for the head fitted with the LLM's term, or (None, why not, {})."""
    name = ast.parse(source).body[0].name
    term = terms.Term(name, source, "llm", 0, head, 0.0)
    try:
        program, meta = offline.fit_terms(request, [term])
    except NotApplicable as err:
        return None, f"term {name}: {err}", {}
    return program, None, meta
