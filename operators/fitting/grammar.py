"""A small grammar of new score terms, composed from the vocabulary's pieces and the run's library.

    term  :=  query_weight(tokens, TABLE) * PIECE     which queries lean on a piece (the table read off a head)
           |  nearest earlier KIND                     one_hot(n, most_recent(tokens, KIND, include_self=False))
           |  since the last KIND                      the keys from the latest KIND up to the query
           |  same bracket and quote depth as the query
           |  PIECE then PIECE                         causal_rows(A) @ causal_rows(B): where A's key looks by B
    PIECE :=  a prelude pattern (first token, previous token, ...)

Each candidate is a term (evo.terms.Term): one private function with a docstring in words, sandboxed
like any generated code. Measured before this grammar was written (gemma-3-270m, 18 heads, the wide fit
on half the search split, scored on the validation split; `invent` tables already in): query tables on
sink, self, previous token +0.0029 mean IoU, on seven pieces +0.0044; same depth +0.0016; nearest earlier
kind +0.0009; since the last kind +0.0009; compositions +0.0004; kind pairs (query and key alike) -0.0006,
so they are not proposed. `bench/term_families.py` measures them again (6 heads, the whole search split):
query tables on all eleven pieces +0.0066, all five families at once +0.0060, the rest within noise. Which candidate joins is decided per head, on held-out rows
(operators.fitting.term_edits).
"""

from __future__ import annotations

import collections

import numpy as np

from evo import terms

MIN_COUNT = 4   # a query token must be seen this often in the sample to get a weight
SIZE = 40       # tokens in a query table: those whose lift is furthest from the median

# pieces a query table or a composition may use: prelude pattern, name in a term's name, meaning
PIECES = {"sink": ("sink", "the first token"), "self_token": ("self", "the token itself"),
          "previous_token": ("previous", "the previous token"), "two_back": ("two_back", "the token two back"),
          "last_delimiter": ("delimiter", "the most recent delimiter"),
          "word_head": ("word_head", "the first piece of the token's own word"),
          "previous_copy": ("copy", "the last earlier copy of the token"),
          "previous_word": ("previous_word", "the first piece of the previous word"),
          "punctuation": ("punctuation", "punctuation"), "capitals": ("capitals", "capitalised tokens"),
          "word_openings": ("word_openings", "tokens that open a word")}
STEPS = {k: v for k, v in PIECES.items()   # a step that lands on one token somewhere else
         if k not in ("sink", "self_token", "punctuation", "capitals", "word_openings")}
KINDS = {"is_capitalized": ("capital", "capitalised token"), "is_punct": ("punctuation", "punctuation mark"),
         "is_digit": ("digit", "digit"), "is_word_start": ("word_start", "token that opens a word"),
         "is_delimiter": ("delimiter", "delimiter")}


def candidates(rng: np.random.Generator, tokens: list[list[str]], lengths: list[int], rows: np.ndarray,
               head: str, library: tuple = (), count: int = 6, causal: bool = True) -> list[terms.Term]:
    """Returns up to `count` new candidate terms for target rows (R, N) on the sample's sentences: three query
    tables read off the head, the rest drawn from the other families; none already in the library."""
    taken = {t.name for t in library} | {t.key for t in library}
    out: list[terms.Term] = []
    names = list(PIECES)
    for i in rng.permutation(len(names))[:3]:
        made = query_table(tokens, lengths, rows, names[int(i)], PIECES[names[int(i)]], head, causal)
        if made is not None:
            out.append(made)
    others = [lambda: nearest(*_pick(rng, KINDS)), lambda: since(*_pick(rng, KINDS)), lambda: same_depth(),
              lambda: then(*_pick(rng, STEPS), *_pick(rng, STEPS))]
    for _ in range(4 * count):
        if len(out) >= count:
            break
        made = others[int(rng.integers(len(others)))]()
        if made is not None and made.name not in taken | {t.name for t in out} and made.key not in taken:
            out.append(made)
    return [t for t in out if t.name not in taken and t.key not in taken]


def _pick(rng: np.random.Generator, table: dict) -> tuple:
    name = list(table)[int(rng.integers(len(table)))]
    return (name, table[name])


def _term(name: str, doc: str, body: str, origin: str) -> terms.Term:
    """Returns a term from its name, docstring and body lines (found on no head yet: head -1, gain 0)."""
    source = f'def {name}(tokens):\n    """{doc}"""\n' + "".join(f"    {line}\n" for line in body.splitlines())
    terms.check(source, name)
    return terms.Term(name, source, origin, 0, -1, 0.0)


def query_table(tokens: list[list[str]], lengths: list[int], rows: np.ndarray, piece: str, said: tuple,
                head: str, causal: bool = True) -> terms.Term | None:
    """Returns the term scoring `piece`'s key by the query's own token (the table read off the head's rows),
    or None when too few query tokens are seen often enough."""
    table = _query_lifts(tokens, lengths, rows, piece, causal)
    if not table:
        return None
    up = [w for w, v in table.items() if v > 0][:3]
    down = [w for w, v in table.items() if v < 0][-3:]
    doc = f"On {said[1]}, by the query's own token"
    doc += (f": more from {', '.join(map(repr, up))}" if up else "") + (
        f"; less from {', '.join(map(repr, down))}" if down else "")
    doc += f" (read off {head})."
    name = f"_{said[0]}_by_query_{_slug(head)}"
    call = f"{piece}(tokens)"
    return _term(name, doc.replace('"""', "'''"), f"return query_weight(tokens, {table!r}) * {call}",
                 f"grammar: query table x {piece}")


def _query_lifts(tokens, lengths, rows, piece, causal) -> dict[str, float]:
    """Returns the `SIZE` query tokens whose log attention on the piece's keys is furthest from the median's."""
    from evo import prelude
    pattern = getattr(prelude, piece)
    got = collections.defaultdict(list)
    r = 0
    for toks, n in zip(tokens, lengths):
        block = rows[r:r + n, :n]   # (n, n) this sentence's rows
        r += n
        m = np.asarray(pattern(list(toks)), dtype=float)
        m = np.tril(m) if causal else m
        for i in range(1, n):
            got[toks[i]].append(float(block[i] @ (m[i] > 0)))
    lifts = {w: float(np.log(np.mean(v) + 1e-3)) for w, v in got.items() if len(v) >= MIN_COUNT}
    if len(lifts) < 3:
        return {}
    mid = float(np.median(list(lifts.values())))
    ranked = sorted(lifts, key=lambda w: (-abs(lifts[w] - mid), w))[:SIZE]
    table = {w: round(lifts[w] - mid, 1) for w in ranked}
    return {w: v for w, v in sorted(table.items(), key=lambda kv: (-kv[1], kv[0])) if v != 0.0}


def nearest(kind: str, said: tuple) -> terms.Term:
    """Returns the term on the nearest earlier token of a kind (before the query)."""
    return _term(f"_nearest_{said[0]}", f"On the nearest earlier {said[1]}.",
                 f"return one_hot(len(tokens), most_recent(tokens, {kind}, include_self=False))",
                 f"grammar: nearest {kind}")


def since(kind: str, said: tuple) -> terms.Term:
    """Returns the term on the keys from the most recent token of a kind up to the query."""
    body = (f"start = [j or 0 for j in most_recent(tokens, {kind})]\n"
            "keys = np.arange(len(tokens))\n"
            "return (keys[None, :] >= np.array(start, dtype=int)[:, None]).astype(float)")
    return _term(f"_since_{said[0]}", f"On the tokens since the most recent {said[1]}, up to the query.", body,
                 f"grammar: since {kind}")


def same_depth() -> terms.Term:
    """Returns the term on keys at the query's depth of brackets and quotes."""
    body = ("depth, quoted, level = 0, 0, []\n"
            "for t in tokens:\n"
            "    s = t.strip()\n"
            "    depth += s[:1] in '([{'\n"
            "    quoted ^= s.count('\"') % 2\n"
            "    level.append(2 * depth + quoted)\n"
            "    depth = max(0, depth - (s[-1:] in ')]}'))\n"
            "level = np.array(level)\n"
            "return (level[:, None] == level[None, :]).astype(float)")
    return _term("_same_depth", "On tokens inside as many brackets and quotes as the query.", body,
                 "grammar: same depth")


def then(first: str, said_first: tuple, second: str, said_second: tuple) -> terms.Term | None:
    """Returns the two-step term: from the query where `first` looks, then from there where `second` looks
    (None for a step taken twice)."""
    if first == second:
        return None
    return _term(f"_{said_first[0].strip('_')}_then_{said_second[0].strip('_')}",
                 f"Two steps: from the query to {said_first[1]}, then from there to {said_second[1]}.",
                 f"return causal_rows({first}(tokens)) @ causal_rows({second}(tokens))",
                 f"grammar: {first} then {second}")


def _slug(head: str) -> str:
    """Returns a head label as part of a name: "L3.H0" -> "l3h0"."""
    return "".join(c for c in head.lower() if c.isalnum())
