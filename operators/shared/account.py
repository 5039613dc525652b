"""Accounts in words: what a program's attention does, built from its parts and their shares.

A mix reads as "84 % on the first token; 10 % on the last few tokens, fading by 0.70 per
step back; 6 % spread evenly over what it can see": each basis term says what its code
does on any text (the phrases below describe the helpers' code, not the corpus), with its
share of the mix. A helper outside the basis speaks through its own docstring; a program
that is not a mix, through its module docstring (a seed's, or the account an LLM gave).
"""

from __future__ import annotations

import ast
import re

from operators.shared import ast_edits, basis, mixing
from operators.shared.ast_edits import NotApplicable


def _fading(c: float):
    return lambda q, causal: (f"on the first token, with 1/{(1 + c) ** q / c ** q:.0f} as much on each other "
                              f"token it can see (so the first token's share shrinks as the sentence grows)")


_PHRASES = {
    "sink": lambda q, causal: "on the first token",
    "early_sink": lambda q, causal: "on the first token, from the first 3 tokens only",
    "start_sink": lambda q, causal: "on the first token, from the first 6 tokens only",
    "opening_sink": lambda q, causal: "on the first token, from the first 12 tokens only",
    "late_sink": lambda q, causal: "on the first token, from tokens after the 24th only",
    "fading_sink": _fading(0.25),
    "slow_fading_sink": _fading(1 / 16),
    "decay_sink": lambda q, causal: (f"on the first token, with about {0.25 ** q:.2g} as much on the token itself, "
                                      f"fading by {0.9 ** q:.2f} per step back"),
    "previous_token": lambda q, causal: "on the previous token",
    "self_token": lambda q, causal: "on the token itself",
    "uniform": lambda q, causal: "spread evenly over what it can see" if causal else "spread evenly over the sentence",
    "two_back": lambda q, causal: "on the token two back",
    "three_back": lambda q, causal: "on the token three back",
    "decay": lambda q, causal: _decaying(0.5 ** q, causal),
    "slow_decay": lambda q, causal: _decaying(0.9 ** q, causal),
    "window": lambda q, causal: "evenly on the token itself and the two before it",
    "same_token": lambda q, causal: "on earlier copies of the same token (itself included)" if causal
    else "on every copy of the same token",
    "previous_copy": lambda q, causal: "on the last earlier copy of the same token",
    "induction": lambda q, causal: "on the tokens that followed earlier copies of the previous token (induction)",
    "punctuation": lambda q, causal: _sofar("on the punctuation marks", causal),
    "delimiters": lambda q, causal: _sofar("on the delimiters", causal),
    "last_delimiter": lambda q, causal: "on the most recent delimiter",
    "capitals": lambda q, causal: _sofar("on the capitalised tokens", causal),
    "word_openings": lambda q, causal: _sofar("on the word starts", causal),
    "word_endings": lambda q, causal: _sofar("on the word ends", causal),
    "word_head": lambda q, causal: "on the first token of its own word",
    "same_word": lambda q, causal: "on the tokens of its own word",
    "previous_word": lambda q, causal: "on the first token of the previous word",
    "digits": lambda q, causal: _sofar("on the digits", causal),
    "special_tokens": lambda q, causal: _sofar("on the special tokens", causal),
    "next_token": lambda q, causal: "on the next token",
    "head_matrix": lambda q, causal: "on its word's dependency head",
    "dependent_matrix": lambda q, causal: "on the words that depend on its word",
    "grandparent_matrix": lambda q, causal: "on the head of its word's head",
    "sibling_matrix": lambda q, causal: "on the other words that share its word's head",
    "chunk_matrix": lambda q, causal: "within its noun chunk",
    "clause_matrix": lambda q, causal: "within its clause",
    "nouns": lambda q, causal: _sofar("on the nouns", causal),
    "verbs": lambda q, causal: _sofar("on the verbs", causal),
    "previous_noun": lambda q, causal: "on the nearest earlier noun",
    "previous_verb": lambda q, causal: "on the nearest earlier verb",
}
assert set(_PHRASES) == set(basis.names(causal=False, linguistic=True)), "every basis term needs a phrase"


def _decaying(rate: float, causal: bool) -> str:
    if causal:
        return f"on the last few tokens, fading by {rate:.2f} per step back"
    return f"on nearby tokens, fading by {rate:.2f} per step away"


def _sofar(text: str, causal: bool) -> str:
    return f"{text} so far" if causal else f"{text} in the sentence"


def of_program(source: str, operator: str, causal: bool) -> str:
    """Returns the account a program carries: an LLM's own (its docstring) for what an LLM wrote, else built."""
    if operator.startswith("llm"):
        try:
            doc = ast.get_docstring(ast_edits.parse(source))
        except NotApplicable:
            doc = None
        if doc and doc.strip():
            return _sentence(doc)
    return describe(source, causal)


def describe(source: str, causal: bool) -> str:
    """Returns the program's account in words, without a head or score: "84 % on the first token; ..."."""
    try:
        mix = mixing.read(source, causal)
    except NotApplicable:
        return "a program that does not parse"
    if mix.wrapped:
        doc = ast.get_docstring(ast_edits.parse(source))
        return _unweighted(_sentence(doc)) if doc and doc.strip() else "a program with no account of its own"
    return "; ".join(f"{pct} % {phrase(mix, t, causal)}" for pct, t in zip(percents(mix.terms), mix.terms))


_WEIGHT = re.compile(r"(?<![\w.])[+-]\d+(?:\.\d+)? ")
_MORE = re.compile(r";? and \d+ more terms?")


def _unweighted(text: str) -> str:
    """Returns a scored program's account without the weights and "more terms" that programs made before
    accounts dropped them still carry in their docstrings ("a softmax of scores: +3.1 on the first token")."""
    if not text.startswith("a softmax of scores:"):
        return text
    return _MORE.sub("", _WEIGHT.sub("", text)).replace("a softmax of scores:", "a softmax of scores", 1)


def phrase(mix: mixing.Mix, term: mixing.Term, causal: bool) -> str:
    """Returns what one term's helper does, in words."""
    name = basis.of_term(mix, term.func, causal)
    if name is not None:
        return _PHRASES[name](term.power, causal)
    helper = mix.def_named(term.func)
    doc = ast.get_docstring(helper) if isinstance(helper, ast.FunctionDef) else None
    text = f"by `{term.func}`: {_sentence(doc, after_colon=True)}" if doc and doc.strip() \
        else f"as computed by `{term.func}`"
    return text if term.power == 1.0 else f"{text} (raised to the power {term.power:g}, then renormalised)"


def percents(terms: list[mixing.Term]) -> list[int]:
    """Returns each term's share of the mass in whole percent, summing to exactly 100."""
    total = sum(t.weight for t in terms)
    raw = [100.0 * t.weight / total for t in terms] if total > 0 else [100.0 / len(terms)] * len(terms)
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: -(raw[i] - out[i]))[:100 - sum(out)]:
        out[i] += 1
    return out


def headline(label: str, iou: float, account: str) -> str:
    """Returns the account's first line for a head: "L5.H1 (IoU 0.92): 84 % on the first token; ..."."""
    return f"{label} (IoU {iou:.2f}): {account}"


def _sentence(doc: str, after_colon: bool = False) -> str:
    """Returns the first line of a docstring with its leading capital lowered and its full stop dropped."""
    line = doc.strip().splitlines()[0].rstrip(".")
    if after_colon and ": " in line:
        line = line.split(": ", 1)[1]
    return line[:1].lower() + line[1:] if line[:2] != line[:2].upper() else line
