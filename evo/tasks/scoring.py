"""Scoring a multiple-choice task the way lm-evaluation-harness does, with heads replaced or not.

Each (context, choice) pair is one request: the context and `" " + choice` are encoded
together, the continuation's tokens are what the whole encoding adds to the context's own
(so a merge across the boundary is handled as the harness handles it), and the request's
score is the summed log-probability of those tokens given everything before them.
`acc` takes the choice with the highest score, `acc_norm` the highest score per character
of the choice. Identical requests are scored once, so equal choices get equal scores, and
a tie among the top choices earns 1 / (number tied) when the answer is among them: a
tie, never a win.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from evo import perplexity
from evo.tasks.formats import Item

DELIMITER = " "  # between context and choice, as the harness's default target_delimiter


@dataclasses.dataclass(frozen=True)
class Requests:
    ids: list[list[int]]             # distinct requests' token ids (specials as the tokenizer adds)
    scored: list[int]                # how many last tokens of each are the continuation
    of_choice: list[list[int]]       # per item, per choice: index into ids


def encode(tokenizer, items: list[Item], max_tokens: int) -> Requests:
    """Returns the distinct requests for every item's choices, context truncated from the left."""
    index: dict[tuple[tuple[int, ...], int], int] = {}
    ids, scored, of_choice = [], [], []
    for item in items:
        mine = []
        for choice in item.choices:
            whole, n = _pair(tokenizer, item.context, DELIMITER + choice, max_tokens)
            key = (tuple(whole), n)
            if key not in index:
                index[key] = len(ids)
                ids.append(whole)
                scored.append(n)
            mine.append(index[key])
        of_choice.append(mine)
    return Requests(ids, scored, of_choice)


def _pair(tokenizer, context: str, continuation: str, max_tokens: int) -> tuple[list[int], int]:
    """Returns (token ids of context + continuation, number of continuation tokens)."""
    spaces = len(context) - len(context.rstrip(" "))
    if spaces:  # the harness moves the context's trailing spaces onto the continuation
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    ctx = list(tokenizer(context, add_special_tokens=True)["input_ids"])
    whole = list(tokenizer(context + continuation, add_special_tokens=True)["input_ids"])
    if whole[: len(ctx)] != ctx or len(whole) == len(ctx):
        whole = ctx + list(tokenizer(continuation, add_special_tokens=False)["input_ids"])
    n = len(whole) - len(ctx)
    if len(whole) > max_tokens:
        keep = max(max_tokens, n + 1)
        first = [whole[0]] if whole[0] == tokenizer.bos_token_id and keep > n + 1 else []
        whole = first + whole[len(whole) - (keep - len(first)):]
    return whole, n


def loglik(meter: perplexity.Meter, replacements: dict) -> np.ndarray:
    """Returns each request's summed continuation log-probability with `replacements` in place."""
    return -meter.run(replacements).nll.numpy()


def accuracy(items: list[Item], requests: Requests, scores: np.ndarray) -> dict:
    """Returns acc and acc_norm (ties share the credit), their standard errors, and the tie count."""
    acc, norm, ties = [], [], 0
    for item, which in zip(items, requests.of_choice):
        ll = scores[which]
        lengths = np.array([max(len(c), 1) for c in item.choices], dtype=np.float64)
        credit, tied = _credit(ll, item.answer)
        acc.append(credit)
        ties += tied
        norm.append(_credit(ll / lengths, item.answer)[0])
    n = len(acc)
    out = {"items": n, "ties": ties}
    for name, values in (("acc", acc), ("acc_norm", norm)):
        p = float(np.mean(values))
        out[name] = p
        out[f"{name}_stderr"] = math.sqrt(max(float(np.var(values, ddof=1)), 0.0) / n) if n > 1 else 0.0
    return out


def _credit(scores: np.ndarray, answer: int) -> tuple[float, bool]:
    """Returns (credit for the answer, whether the top score was tied)."""
    top = np.flatnonzero(np.isclose(scores, scores.max(), rtol=0.0, atol=1e-6))
    return (1.0 / len(top) if answer in top else 0.0), len(top) > 1
