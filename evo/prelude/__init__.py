"""The helper prelude programs may use: token predicates and positions (tokens), whole patterns (patterns),
score terms for `softmax_rows` (scores), the one score term read off the model (content: a head's
affinity between tokens read alone),
and what a token's word is and how words relate (linguistic, with the `headcode[linguistic]` extra).

Every name in `__all__` is pre-injected into a program's globals by the sandbox, so a
program can call `is_punct(t)` or `sink(tokens)` with no import; `from evo.prelude import
sink` also works (and makes the file runnable on its own). Everything here is pure.
docs/prelude.md documents each helper for users and for LLM prompts.
"""

from evo.prelude import content as _content
from evo.prelude import linguistic as _linguistic
from evo.prelude import patterns as _patterns
from evo.prelude import scores as _scores
from evo.prelude import tokens as _tokens
from evo.prelude.content import *  # noqa: F401,F403
from evo.prelude.linguistic import *  # noqa: F401,F403
from evo.prelude.patterns import *  # noqa: F401,F403
from evo.prelude.scores import *  # noqa: F401,F403
from evo.prelude.tokens import *  # noqa: F401,F403

PATTERNS = _patterns.PATTERNS + _linguistic.PATTERNS   # whole patterns: the basis a mix is made of
LINGUISTIC_PATTERNS = _linguistic.PATTERNS
SCORE_TERMS = tuple(_scores.__all__) + tuple(_content.__all__)  # terms for softmax_rows, not shares
LINGUISTIC = tuple(_linguistic.__all__)  # the helpers that need the linguistic extra's annotations
__all__ = list(_tokens.__all__) + [n for n in _patterns.__all__ if n not in _tokens.__all__] + list(_scores.__all__) + list(_content.__all__) + [
    n for n in _linguistic.__all__ if n not in _tokens.__all__ and n not in _patterns.__all__]
