"""Invented score terms: small named functions a run adds to its vocabulary while it searches.

    def _sink_by_query_4(tokens):
        '''On the first token, by the query's own token: more from ',', '.', ...; less from ' the', ...
        (read off L3.H1).'''
        return query_weight(tokens, {",": 1.6, ".": 1.2, " the": -0.9}) * sink(tokens)

A term is one private function `tokens -> (n, n)` scores with a docstring in words. Programs that
use a term carry its definition, so an exported program stays one standalone file. A term is
generated code: its values are only ever computed in the sandbox (`values`), checked finite and
of the right shape, and cached beside the attention set (one array per term, every sentence).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import re

import numpy as np

from evo.errors import UserError

NAME = re.compile(r"^_[a-z][a-z0-9_]{0,48}$")   # a private helper's name: the program contract's rule


@dataclasses.dataclass(frozen=True)
class Term:
    """One invented term, as the library keeps it."""

    name: str          # the function's name in programs, e.g. "_nearest_capital"
    source: str        # its whole definition, docstring included
    origin: str        # how it was made, e.g. "grammar: query table x sink", "llm"
    generation: int    # the generation it joined the library
    head: int          # the head whose residual it was found on
    gain: float        # IoU it added to that head's fit on held-out rows (not the rows it was found on)

    @functools.cached_property
    def doc(self) -> str:
        """Returns the docstring's first paragraph, on one line: what the term marks, in words."""
        fn = definition(self.source, self.name)
        return " ".join((ast.get_docstring(fn) or "").split("\n\n")[0].split())

    @functools.cached_property
    def key(self) -> str:
        """Returns a short digest of the definition (what a cache is keyed by)."""
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Term":
        """Returns the term a checkpoint holds (unknown fields ignored); UserError when it is not one."""
        fields = {f.name for f in dataclasses.fields(cls)}
        try:
            term = cls(**{k: v for k, v in d.items() if k in fields})
        except TypeError as err:
            raise UserError(f"a library term is malformed: {err}") from None
        check(term.source, term.name)
        return term


def check(source: str, name: str) -> None:
    """Raises UserError unless `source` is exactly one function `name(tokens)` with a docstring in words."""
    if not isinstance(name, str) or not NAME.match(name):
        raise UserError(f"term name {name!r} must be a private helper's name (e.g. '_nearest_capital')")
    fn = definition(source, name)
    doc = ast.get_docstring(fn) or ""
    if len(re.findall(r"[A-Za-z]{2,}", doc)) < 3:
        raise UserError(f"term {name} needs a docstring that says in words what it marks")
    if [a.arg for a in fn.args.args] != ["tokens"] or fn.args.vararg or fn.args.kwonlyargs:
        raise UserError(f"term {name} must take exactly one argument, tokens")


def definition(source: str, name: str) -> ast.FunctionDef:
    """Returns the single function definition in `source`, which must be named `name`."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise UserError(f"term {name} does not parse: {err.msg} (line {err.lineno})") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef) or tree.body[0].name != name:
        raise UserError(f"a term's source must be one function named {name}")
    return tree.body[0]


def program(term: Term) -> str:
    """Returns a program whose attention is the term's raw scores (what the sandbox runs), with the
    prelude names and numpy the definition uses imported."""
    from evo import prelude

    used = {n.id for n in ast.walk(definition(term.source, term.name)) if isinstance(n, ast.Name)}
    names = sorted(used & set(prelude.__all__))
    head = "import numpy as np\n" + (f"from evo.prelude import {', '.join(names)}\n" if names else "")
    return f"{head}\n\n{term.source.rstrip()}\n\n\ndef attention(tokens):\n    return {term.name}(tokens)\n"


def values(term: Term, sentences: list[list[str]], limits=None) -> list[np.ndarray] | str:
    """Returns the term's (n, n) scores on each sentence, computed in the sandbox, or the one-line reason
    it cannot be used (it failed, hung, or gave a wrong shape or a non-finite score)."""
    from evo import sandbox

    outcome = sandbox.run(program(term), sentences, limits if limits is not None else sandbox.Limits())
    if not outcome.ok:
        return f"term {term.name} failed in the sandbox: {outcome.error}"
    for i, m in enumerate(outcome.matrices):
        if not np.isfinite(m).all():
            return f"term {term.name} gave a non-finite score on sentence {i}"
    return outcome.matrices


def flat(matrices: list[np.ndarray]) -> np.ndarray:
    """Returns per-sentence (n, n) matrices laid end to end (sum of n * n,): how a set caches a term."""
    return np.concatenate([np.asarray(m, dtype=np.float32).ravel() for m in matrices]) if matrices else \
        np.zeros(0, dtype=np.float32)


def unflat(array: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
    """Returns the per-sentence (n, n) matrices `flat` laid end to end."""
    out, at = [], 0
    for n in lengths:
        out.append(np.asarray(array[at:at + n * n], dtype=np.float64).reshape(n, n))
        at += n * n
    return out
