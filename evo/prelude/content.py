"""The score terms read off the model: a head's affinity between tokens read alone (evo.affinity).

    softmax_rows(0.8 * affinity(tokens, "gemma-3-270m", 0, 3) + 1.2 * steps_back(tokens, 1))
    softmax_rows(1.0 * affinity_at_distance(tokens, "gemma-3-270m", 0, 3))
    softmax_rows(1.0 * affinity_in_context(tokens, "gemma-3-270m", 6, 2, 2))

What the head's query for one token makes of another token's key when the model reads each token
on its own: the part of its scores that the tokens' identities alone decide. In a rotary model,
`affinity_at_distance` turns the query by the two tokens' distance apart as the model does: the part
the identities and the distance decide (a first layer's whole score). `affinity_in_context` reads each
token beside the few before it (evo.affinity.context): how much context the head needs. Trusted code hands the values
over (`provide`); a program run on its own outside headcode reads them off the model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["affinity", "affinity_at_distance", "affinity_in_context"]

_KNOWN: dict[tuple, np.ndarray] = {}   # (model, layer, head, tokens, at distance, context) -> (n, n), this process
_READER = None   # (tokens, model, layer, head, at distance, context) -> (n, n) where nothing was handed over
                 # (the sandbox refuses)


def provide(tokens: Sequence[str], model: str, layer: int, head: int, values: np.ndarray,
            at_distance: bool = False, context: int = 0) -> None:
    """Hands the prelude one sentence's affinity for one head (trusted callers only)."""
    _KNOWN[(model, int(layer), int(head), tuple(tokens), bool(at_distance) and not context, int(context))] = \
        np.asarray(values, dtype=np.float64)


def affinity(tokens: Sequence[str], model: str, layer: int, head: int) -> np.ndarray:
    """Returns (n, n): head `layer`.`head` of `model` scoring key j for query i on the tokens' identities
    alone (the query of token i against the key of token j, each read by the model on its own)."""
    return _read(tokens, model, layer, head, False)


def affinity_at_distance(tokens: Sequence[str], model: str, layer: int, head: int) -> np.ndarray:
    """Returns (n, n): head `layer`.`head` of `model` scoring key j for query i on the two tokens' identities
    and their distance apart (each token read on its own, the query turned by i - j as the model's rotary
    embedding turns it); only for a model with a rotary embedding."""
    return _read(tokens, model, layer, head, True)


def affinity_in_context(tokens: Sequence[str], model: str, layer: int, head: int, context: int) -> np.ndarray:
    """Returns (n, n): head `layer`.`head` of `model` scoring key j for query i with each token read beside the
    `context` tokens before it (its sentence's own start, where that is nearer), the pair at its distance apart
    where the model's embedding is rotary: how much of the head a few tokens of context decide."""
    if type(context) is not int or context < 1:
        raise ValueError(f"affinity_in_context reads each token beside 1 or more tokens before it, not {context!r}")
    return _read(tokens, model, layer, head, False, context)


def _read(tokens, model, layer, head, at_distance: bool, context: int = 0) -> np.ndarray:
    found = _KNOWN.get((model, int(layer), int(head), tuple(tokens), at_distance, context))
    if found is not None:
        return found
    if _READER is not None:
        return _READER(list(tokens), model, int(layer), int(head), at_distance, context)
    from evo import affinity as model_reading  # a program run on its own, outside headcode: ask the model

    return model_reading.for_sentences([list(tokens)], model, int(layer), int(head), at_distance, context)[0]
