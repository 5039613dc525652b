"""Tests for evaluating programs through the sandbox against a (synthetic) attention set."""

import pathlib

import numpy as np
import pytest

from evo import evaluate, fitness, parallel, program, sandbox
from evo.errors import UserError

SEEDS = pathlib.Path(__file__).parent.parent / "seeds"

PREVIOUS = (SEEDS / "previous_token.py").read_text()
FIRST = (SEEDS / "first_token.py").read_text()
SELF = (SEEDS / "self_token.py").read_text()
UNIFORM = (SEEDS / "uniform_causal.py").read_text()
NAN_ON_LAST_ROW = """import numpy as np

def attention(tokens):
    a = np.eye(len(tokens))
    a[-1, 0] = float("nan")
    return a
"""
NEGATIVE = "import numpy as np\n\ndef attention(tokens):\n    return -np.eye(len(tokens))\n"
RAISES = "def attention(tokens):\n    raise RuntimeError('boom')\n"
SYNTAX = "def attention(tokens:\n    return 1\n"


def test_known_programs_score_one_on_their_synthetic_heads(tiny_attention_set):
    # heads: k=0 previous token, k=1 first token, k=2 self, k=3 uniform causal
    results = evaluate.evaluate([PREVIOUS, FIRST, SELF, UNIFORM], tiny_attention_set.path)
    assert [r.ok for r in results] == [True] * 4
    for k, r in enumerate(results):
        assert r.iou.shape == (4,) and r.iou.dtype == np.float32
        assert r.iou[k] == pytest.approx(1.0, abs=1e-3)
        assert np.argmax(r.iou) == k
        assert r.key == program.key([PREVIOUS, FIRST, SELF, UNIFORM][k])
        assert r.length == program.length([PREVIOUS, FIRST, SELF, UNIFORM][k])


def test_scores_equal_direct_fitness_computation(tiny_attention_set):
    aset = tiny_attention_set
    [result] = evaluate.evaluate([UNIFORM], aset.path)
    targets = fitness.Targets.from_set(aset)
    outputs = [fitness.normalise(np.tril(np.ones((len(t), len(t)))), len(t), True) for t in aset.tokens]
    np.testing.assert_allclose(result.iou, fitness.iou(targets, outputs), atol=1e-6)


def test_malformed_output_fails_with_row_and_sentence(tiny_attention_set):
    nan, negative = evaluate.evaluate([NAN_ON_LAST_ROW, NEGATIVE], tiny_attention_set.path)
    assert not nan.ok and nan.iou is None
    assert "NaN" in nan.error and "sentence 0" in nan.error
    assert not negative.ok and "negative entry at (0, 0) on sentence 0" in negative.error


def test_failing_programs_get_worst_fitness_and_a_reason(tiny_attention_set):
    raises, syntax, good = evaluate.evaluate([RAISES, SYNTAX, PREVIOUS], tiny_attention_set.path)
    assert not raises.ok and raises.iou is None and "boom" in raises.error
    assert not syntax.ok and syntax.iou is None and "line" in syntax.error
    assert syntax.length == 0
    assert good.ok


def test_results_keep_input_order_and_do_not_depend_on_workers(tiny_attention_set):
    sources = [PREVIOUS, RAISES, FIRST, SELF, NEGATIVE, UNIFORM, PREVIOUS]
    one = evaluate.evaluate(sources, tiny_attention_set.path, workers=1)
    two = evaluate.evaluate(sources, tiny_attention_set.path, workers=2)
    assert [r.key for r in one] == [program.key(s) for s in sources]
    for a, b in zip(one, two):
        assert (a.key, a.ok, a.error, a.length) == (b.key, b.ok, b.error, b.length)
        if a.ok:
            np.testing.assert_array_equal(a.iou, b.iou)


def test_threading_backend_gives_the_same_results(tiny_attention_set):
    sources = [PREVIOUS, FIRST, UNIFORM]
    base = evaluate.evaluate(sources, tiny_attention_set.path)
    threaded = evaluate.evaluate(sources, tiny_attention_set.path, workers=2, backend="threading")
    for a, b in zip(base, threaded):
        np.testing.assert_array_equal(a.iou, b.iou)


def test_worker_loads_targets_once_per_set(tiny_attention_set):
    evaluate._CACHE.clear()
    first = evaluate.load_targets(tiny_attention_set.path)
    assert evaluate.load_targets(tiny_attention_set.path) is first


def test_empty_input_gives_empty_output(tiny_attention_set):
    assert evaluate.evaluate([], tiny_attention_set.path) == []


def test_batches_cover_every_item_once():
    for n in (0, 1, 7, 8, 9, 100):
        for workers in (1, 2, 16):
            chunks = evaluate.batches(n, workers)
            assert [i for r in chunks for i in r] == list(range(n))
            assert all(len(r) <= evaluate.MAX_BATCH for r in chunks)


def test_bad_arguments_are_user_errors(tiny_attention_set, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        evaluate.evaluate([PREVIOUS], tmp_path / "nowhere")
    with pytest.raises(UserError, match="unknown backend 'spark'"):
        evaluate.evaluate([PREVIOUS], tiny_attention_set.path, backend="spark")
    with pytest.raises(UserError, match="workers must be at least 1"):
        evaluate.evaluate([PREVIOUS], tiny_attention_set.path, workers=0)


def test_dask_scheduler_that_is_not_there_is_a_clear_error(tiny_attention_set):
    pytest.importorskip("distributed")
    with pytest.raises(UserError, match="could not reach the Dask scheduler at tcp://127.0.0.1:9"):
        with parallel.Pool("dask", 1, "tcp://127.0.0.1:9", connect_timeout=1) as pool:
            evaluate.evaluate([PREVIOUS], tiny_attention_set.path, pool=pool)


def test_time_limit_failure_is_reported(tiny_attention_set):
    loop = "def attention(tokens):\n    while True:\n        pass\n"
    [r] = evaluate.evaluate([loop], tiny_attention_set.path, limits=sandbox.Limits(seconds=0.5))
    assert not r.ok and "timeout" in r.error
