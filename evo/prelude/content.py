"""The score term read off the model: a head's affinity between tokens read alone (evo.affinity).

    softmax_rows(0.8 * affinity(tokens, "gemma-3-270m", 0, 3) + 1.2 * steps_back(tokens, 1))

What the head's query for one token makes of another token's key when the model reads each token
on its own: the part of its scores that the tokens' identities alone decide. Trusted code hands
the values over (`provide`); a program run on its own outside headcode reads them off the model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["affinity"]

_KNOWN: dict[tuple, np.ndarray] = {}   # (model, layer, head, tokens) -> (n, n), in this process
_READER = None   # (tokens, model, layer, head) -> (n, n) where nothing was handed over (the sandbox refuses)


def provide(tokens: Sequence[str], model: str, layer: int, head: int, values: np.ndarray) -> None:
    """Hands the prelude one sentence's affinity for one head (trusted callers only)."""
    _KNOWN[(model, int(layer), int(head), tuple(tokens))] = np.asarray(values, dtype=np.float64)


def affinity(tokens: Sequence[str], model: str, layer: int, head: int) -> np.ndarray:
    """Returns (n, n): head `layer`.`head` of `model` scoring key j for query i on the tokens' identities
    alone (the query of token i against the key of token j, each read by the model on its own)."""
    found = _KNOWN.get((model, int(layer), int(head), tuple(tokens)))
    if found is not None:
        return found
    if _READER is not None:
        return _READER(list(tokens), model, int(layer), int(head))
    from evo import affinity as model_reading  # a program run on its own, outside headcode: ask the model

    return model_reading.for_sentences([list(tokens)], model, int(layer), int(head))[0]
