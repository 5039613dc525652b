"""Accounts in words, from measured shares: where the head's attention goes and where the program's goes.

    "52 % on the first token (program 50 %); 30 % on the previous token (program 33 %);
     9 % on its word's dependency head or dependents (program 0 %); 9 % elsewhere (program 17 %)"

At most three named shares, then the rest. The first token comes first whenever it holds at
least SHOWN_FIRST of the head's attention (most decoder heads park some there); the others are
the head's largest shares. A part-of-speech head says which word class it selects; a head that
goes where the tokens' identities alone send it says how much of its attention off the first token
lands on the key its affinity ranks first:

    "...; off the first token, 47 % on the key the tokens alone favour most (program 40 %; even spread: 11 %)"
"""

from __future__ import annotations

import numpy as np

from evo.explanation import families, patterns

NAMED = 3
SHOWN_FIRST = 0.05
_FIRST = patterns.NAMES.index("first")


def named(head: np.ndarray) -> list[int]:
    """Returns the indices of the patterns an account names: the first token where it holds
    SHOWN_FIRST or more, then the head's largest other shares, NAMED in all, "rest" never."""
    order = [p for p in np.argsort(-head, kind="stable") if p != patterns.REST and head[p] >= 0.005]
    picked = [_FIRST] if head[_FIRST] >= SHOWN_FIRST else []
    picked += [int(p) for p in order if p != _FIRST][:NAMED - len(picked)]
    return picked


def records(head: np.ndarray, program: np.ndarray | None, text: str, content: tuple | None = None) -> dict:
    """Returns the shares as data for front.json: the named patterns and the rest, head and program, and
    where measured the share on the favoured keys (content: head's, program's or None, even spread's)."""
    picked = named(head)
    rows = [{"pattern": patterns.NAMES[p], "head": round(float(head[p]), 4),
             "program": None if program is None else round(float(program[p]), 4)} for p in picked]
    rest = [p for p in range(len(head)) if p not in picked]
    rows.append({"pattern": "rest", "head": round(float(head[rest].sum()), 4),
                 "program": None if program is None else round(float(program[rest].sum()), 4)})
    out = {"text": text, "patterns": rows}
    if content is not None:
        own, theirs, even = content
        out["content"] = {"head": round(float(own), 4), "program": None if theirs is None else round(float(theirs), 4),
                          "even": round(float(even), 4)}
    return out


def words(head: np.ndarray, program: np.ndarray | None,
          word_class: tuple[np.ndarray, np.ndarray] | None = None, content: tuple | None = None) -> str:
    """Returns the account: each named share with the program's beside it, then the rest; then the word class
    a head selects, and the share on the key its affinity favours (content: head's, program's, even spread's)
    where the head is selective for it."""
    parts = []
    for p in named(head):
        theirs = "" if program is None else f" (program {_pct(program[p])})"
        parts.append(f"{_pct(head[p])} {patterns.PHRASES[patterns.NAMES[p]]}{theirs}")
    rest = [p for p in range(len(head)) if p not in named(head)]
    theirs = "" if program is None else f" (program {_pct(program[rest].sum())})"
    parts.append(f"{_pct(head[rest].sum())} elsewhere{theirs}")
    picked = families.selective_class(word_class)
    if picked is not None:
        cls, own, even = picked
        parts.append(f"off the first token, {_pct(own)} on {cls.lower()} words (even spread: {_pct(even)})")
    if content is not None and families.selective_content((content[0], content[2])):
        own, theirs, even = content
        mine = "" if theirs is None else f"program {_pct(theirs)}; "
        parts.append(f"off the first token, {_pct(own)} on the key the tokens alone favour most "
                     f"({mine}even spread: {_pct(even)})")
    return "; ".join(parts)


def _pct(x: float) -> str:
    return f"{100 * float(x):.0f} %"
