"""Novelty before evaluation: programs that attend exactly as earlier ones are not scored and do not count."""

from __future__ import annotations

import numpy as np

from evo import evaluate, search
from evo.search import checkpoint, runlog
from operators import base
from test_search_toys import SEEDS, ToyEvaluator, ToyOperator, engine, source, weights

EYE = "import numpy as np\n\ndef attention(tokens):\n    return np.eye(len(tokens))\n"
EYE_SCALED = "import numpy as np\n\ndef attention(tokens):\n    n = len(tokens)\n    return 7.5 * np.eye(n, n)\n"
EYE_ALMOST = ("import numpy as np\n\ndef attention(tokens):\n    n = len(tokens)\n"
              "    a = np.eye(n) + 1e-9\n    return a\n")
PREVIOUS = ("import numpy as np\n\ndef attention(tokens):\n    n = len(tokens)\n    a = np.eye(n, k=-1)\n"
            "    a[0, 0] = 1.0\n    return a\n")


def test_the_fingerprint_ignores_scale_and_noise_below_its_rounding_but_not_a_real_difference(tiny_attention_set):
    out = evaluate.evaluate([EYE, EYE_SCALED, EYE_ALMOST, PREVIOUS], tiny_attention_set.path)
    assert all(e.ok and e.behaviour for e in out)
    assert out[0].behaviour == out[1].behaviour == out[2].behaviour != out[3].behaviour


def test_a_program_seen_before_is_not_scored(tiny_attention_set):
    [eye] = evaluate.evaluate([EYE], tiny_attention_set.path)
    again, other = evaluate.evaluate([EYE_SCALED, PREVIOUS], tiny_attention_set.path,
                                     seen=frozenset({eye.behaviour}))
    assert again.duplicate and not again.ok and again.iou is None and again.error == evaluate.DUPLICATE
    assert again.behaviour == eye.behaviour
    assert other.ok and not other.duplicate and other.iou is not None
    failing = evaluate.evaluate(["def attention(tokens):\n    raise ValueError('no')\n"],
                                tiny_attention_set.path, seen=frozenset({eye.behaviour}))[0]
    assert not failing.ok and not failing.duplicate and failing.behaviour is None


class Respeller(ToyOperator):
    """The toy operator, except that every third child is its parent written another way (same weights)."""

    def vary(self, requests):
        out = super().vary(requests)
        for i, req in enumerate(requests):
            if req.seed % 3 == 0:
                parent = req.parents[0].source
                out[i] = base.Child(source(weights(parent), parent.count("PAD") + 1 + req.seed % 5),
                                    (req.parents[0].id,), "toy.respell")
        return out


def _run(tmp_path, name, budget):
    e = engine(tmp_path / name, budget=budget, operator=Respeller())
    e.seed(SEEDS)
    e.run()
    return e


def test_a_run_keeps_one_program_per_behaviour_and_does_not_count_the_rest(tmp_path):
    evaluator = ToyEvaluator()
    e = engine(tmp_path / "r", evaluator=evaluator, budget=search.Budget(max_programs=90), operator=Respeller())
    e.seed(SEEDS)
    e.run()
    behaviours = [r.behaviour for r in e.archive.records if r.ok]
    assert len(behaviours) == len(set(behaviours))           # one program per behaviour
    assert e.novelty.duplicates > 0 and len(e.archive) == 90  # the rejected did not count
    assert not e.novelty.rejected & set(e.archive.by_key)
    assert len(runlog.read(tmp_path / "r" / search.LOG)) == len(e.archive)
    evaluated = [src for call in evaluator.calls for src in call]
    from evo import program
    assert len({program.key(s) for s in evaluated}) == len(evaluated)  # nothing evaluated twice, rejected or not


def test_a_resumed_run_rejects_the_same_programs_as_an_uninterrupted_one(tmp_path):
    full = _run(tmp_path, "full", search.Budget(max_programs=90))
    _run(tmp_path, "part", search.Budget(max_programs=90, generations=4))
    resumed = engine(tmp_path / "part", budget=search.Budget(max_programs=90), operator=Respeller())
    resumed.load_state(checkpoint.load(tmp_path / "part"))
    resumed.run()
    assert resumed.novelty.state() == full.novelty.state() and full.novelty.duplicates > 0
    assert [r.key for r in resumed.archive.records] == [r.key for r in full.archive.records]
    assert np.array_equal(resumed.archive.iou, full.archive.iou) and resumed.fronts == full.fronts


def test_a_checkpoint_made_before_novelty_resumes_with_nothing_rejected(tmp_path):
    e = _run(tmp_path, "old", search.Budget(max_programs=40))
    state = checkpoint.load(tmp_path / "old")
    state.pop("novelty")
    resumed = engine(tmp_path / "old", budget=search.Budget(max_programs=50), operator=Respeller())
    resumed.load_state(state)
    assert resumed.novelty.duplicates == 0 and not resumed.novelty.rejected
    resumed.run()
    assert len(resumed.archive) == 50 and len(e.archive) == 40
