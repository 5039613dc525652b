"""Each head's affinity between tokens read alone: one token's query against another token's key, as the
model computes them for each token on its own.

    q(t), k(t)      <- one forward pass over [start, t] for each token t (start: the special token the
                       model's sentences begin with, if any), recorded inside the attention function
                       at t's position, every layer at once
    affinity[i, j]  =  q(t_i) . k(t_j) * scaling       # per head; both at one position, so a rotary
                                                        # embedding cancels; soft-capped as the head is

These are the head's scores if only the tokens' identities counted (its token-level query-key
circuit, read through the whole model for each token alone). Where a head follows content, the
term carries much of its attention; where it follows position or structure, little, and a fit
gives it little weight. In a rotary model (Llama, Gemma, Qwen, SmolLM2) the same two vectors,
the query turned by the tokens' distance apart as the model turns it (evo.affinity.rotary), give
`affinity_at_distance`: the scores if only the two tokens and their distance counted; in a model's
first layer, its scores exactly. `affinity_in_context` reads each token beside the 1 to 3 tokens before
it (evo.affinity.context): how much context the head needs. Four parts: reading tokens off the model
(evo.affinity.reading), the rotary turn (evo.affinity.rotary), the readings in context
(evo.affinity.context), and keeping the values beside an attention set and handing them
out (evo.affinity.kept: `ensure` writes the set's affinities beside it, one float16 (K, n, n) tensor per
sentence laid out as the attention file, a second file at distance where the model is rotary, and one
per context;
`preload` hands a process the set's sentences, so programs read them and never the model;
`for_sentences` is what the sandbox's caller and the prelude ask, loading the model only for
text no set holds). Here: which calls a program makes.
"""

from __future__ import annotations

import ast
import re

from evo.affinity.kept import (_CHECKED, _HANDLES, _LIVE, _SETS, adopt, at_distance_kept, ensure,  # noqa: F401
                              file_for, for_sentences, preload, stored)
from evo.affinity import context as contexts
from evo.affinity.reading import Vectors, vectors  # noqa: F401

NAME = "affinity"                     # the prelude helper programs call: the tokens read alone
AT_DISTANCE = "affinity_at_distance"  # and the same at the pair's distance apart (a rotary model's)
IN_CONTEXT = "affinity_in_context"    # and each token read beside the few before it (evo.affinity.context)
MAX_HEADS = 4                         # heads one program may read (each is handed over for every sentence)
_USES = re.compile(r"\baffinity(_at_distance|_in_context)?\s*\(")


def uses(source: str) -> bool:
    """Returns whether a program's source names the affinity helper."""
    return bool(_USES.search(source))


def calls(source: str) -> list[tuple[str, int, int, bool, int]]:
    """Returns the (model, layer, head, at distance, context) of each affinity call in a program; raises
    ValueError for a call whose model, layer, head or context is not written out as a constant (the values are
    handed over before it runs), or whose context is not one kept (1 .. context.MAX)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in (NAME, AT_DISTANCE, IN_CONTEXT)):
            continue
        named = ("model", "layer", "head") + (("context",) if node.func.id == IN_CONTEXT else ())
        given = dict(zip(("tokens",) + named, node.args))
        given.update({k.arg: k.value for k in node.keywords if k.arg})
        values = [given.get(k) for k in named]
        if not all(isinstance(v, ast.Constant) for v in values) or not isinstance(values[0].value, str) \
                or not all(type(v.value) is int for v in values[1:]):
            raise ValueError(f"{node.func.id}(tokens, {', '.join(named)}) takes its {', '.join(named)} as constants")
        context = values[3].value if len(values) > 3 else 0
        if node.func.id == IN_CONTEXT and not 1 <= context <= contexts.MAX:
            raise ValueError(f"affinity_in_context reads each token beside 1 to {contexts.MAX} tokens before it, "
                             f"not {context}")
        found.append((values[0].value, values[1].value, values[2].value, node.func.id == AT_DISTANCE, context))
    found = list(dict.fromkeys(found))
    if len(found) > MAX_HEADS:
        raise ValueError(f"a program may read the affinity of {MAX_HEADS} heads at most, not {len(found)}")
    return found


def context_read(sources: list[str], model: str, layer: int, head: int) -> int:
    """Returns the most context any of these programs reads head `layer`.`head`'s affinity in (0: none; a program
    whose calls cannot be read counts as none)."""
    found = [0]
    for source in sources:
        try:
            found += [c[4] for c in (calls(source) if uses(source) else []) if c[:3] == (model, layer, head)]
        except (ValueError, SyntaxError, RecursionError):
            continue
    return max(found)
