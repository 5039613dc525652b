"""Toy objective, evaluator and operator for engine tests, and tests of the toys themselves.

A toy program is a list of three weights `W`; toy head k wants the weights `TARGETS[k]`,
and scores `1 / (1 + 2 * |W - target|_1)`, so the best IoU per head is known and the
search has something real to climb. Negative weights are a failed evaluation.
"""

from __future__ import annotations

import ast
import pathlib

import numpy as np

from evo import evaluate, program, search
from operators import base

TARGETS = np.array([
    [0.9, 0.1, 0.0], [0.8, 0.2, 0.1], [0.0, 1.0, 0.0], [0.1, 0.9, 0.2],
    [0.3, 0.3, 0.3], [0.0, 0.0, 1.0],
])


def source(w, pad: int = 0) -> str:
    """Returns a toy program with weights `w` and `pad` extra statements (longer, same score)."""
    body = "".join(f"PAD{i} = {i}\n" for i in range(pad))
    return f"W = [{', '.join(f'{x:.2f}' for x in w)}]\n{body}\n\ndef attention(tokens):\n    return W\n"


def weights(src: str) -> np.ndarray:
    tree = ast.parse(src)
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "W":
            return np.array(ast.literal_eval(node.value), dtype=float)
    raise ValueError("no W")


class ToyEvaluator:
    """Scores toy programs against TARGETS; counts calls and sources seen."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, sources: list[str], seen=frozenset()) -> list[evaluate.Evaluation]:
        self.calls.append(list(sources))
        out = []
        for src in sources:
            w = weights(src)
            if (w < 0).any():
                out.append(evaluate.Evaluation(program.key(src), False, None, program.length(src),
                                               "negative weight", 0.0))
                continue
            found = evaluate.behaviour([np.round(w, 6)[None]])  # what a toy program computes: its weights
            if found in seen:
                out.append(evaluate.Evaluation(program.key(src), False, None, program.length(src),
                                               evaluate.DUPLICATE, 0.0, found, True))
                continue
            iou = 1.0 / (1.0 + 2.0 * np.abs(w[None] - TARGETS).sum(1))
            out.append(evaluate.Evaluation(program.key(src), True, iou.astype(np.float32),
                                           program.length(src), None, 0.0, found))
        return out


class ToyOperator(base.Operator):
    """Mutates one weight or mixes two parents, from each request's own seed."""

    name = "toy"

    def __init__(self, limit: int | None = None):
        self.calls = 0
        self.limit = limit

    def vary(self, requests: list[base.Request]) -> list[base.Child]:
        out = []
        for req in requests:
            self.calls += 1
            rng = np.random.default_rng(req.seed)
            w = weights(req.parents[0].source)
            pad = req.parents[0].source.count("PAD")
            if req.kind == "crossover":
                a = rng.uniform(0.2, 0.8)
                w = a * w + (1 - a) * weights(req.parents[1].source)
                op = "toy.mix"
            else:
                w = w.copy()
                w[rng.integers(3)] += rng.normal(0, 0.25)
                pad = max(0, pad + int(rng.integers(-1, 2)))
                op = "toy.nudge"
            out.append(base.Child(source(np.round(w, 2), pad), tuple(p.id for p in req.parents), op))
        return out

    def stats(self) -> dict:
        return {"calls": self.calls}

    def state_dict(self) -> dict:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.calls = int(state["calls"])

    def exhausted(self) -> str | None:
        return f"toy limit {self.limit} reached" if self.limit and self.calls >= self.limit else None


SEEDS = [("zeros", source([0.0, 0.0, 0.0]), "seed"), ("first", source([1.0, 0.0, 0.0]), "seed"),
         ("second", source([0.0, 1.0, 0.0], pad=1), "seed"), ("half", source([0.5, 0.5, 0.5]), "seed")]


def engine(run_dir: pathlib.Path, seed: int = 3, budget=search.Budget(max_programs=60), operator=None,
           evaluator=None, **settings) -> search.Search:
    """Returns a toy engine (not yet seeded) writing into run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / search.LOG).touch()
    cfg = dict(batch_size=8, population=4, islands=2)
    cfg.update(settings)
    return search.Search(run_dir, evaluator or ToyEvaluator(), operator or ToyOperator(),
                         n_heads=len(TARGETS), rng=np.random.default_rng(seed),
                         attention_set={"fingerprint": "toy", "n_layers": 2, "n_heads": 3},
                         settings=search.Settings(**cfg), budget=budget)


def test_toy_evaluator_scores_target_as_one():
    [ev] = ToyEvaluator()([source(TARGETS[2])])
    assert ev.ok and ev.iou[2] == 1.0 and ev.iou[0] < 0.5


def test_toy_operator_is_deterministic_per_request_seed():
    parent = base.Parent("a", source([0.1, 0.2, 0.3]), np.zeros(6), 10)
    req = base.Request("mutate", (parent,), (0,), 123)
    other = base.Request("mutate", (parent,), (0,), 124)
    assert ToyOperator().vary([req, other])[0] == ToyOperator().vary([req])[0]
