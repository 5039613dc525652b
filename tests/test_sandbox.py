"""The sandbox's contract: the static check, results, errors, determinism, processes."""

import concurrent.futures

import joblib
import numpy as np
import psutil
import pytest

from evo import prelude, sandbox
from evo.errors import UserError

LIMITS = sandbox.Limits(seconds=1.0, memory_mb=256)
PREVIOUS = "def attention(tokens):\n    return np.eye(len(tokens), k=-1)\n"
SENTENCES = [["<bos>", "The", " cat", " sat"], [" a"], [], ["<bos>", " x", ","]]


@pytest.mark.parametrize("source, reason", [
    ("def attention(tokens):\n    return 1\n", None),
    ("'''doc'''\nimport math\nWINDOW = 3\ndef _h(t):\n    return t\n"
     "class _C:\n    def __init__(self):\n        self.x = 1\n"
     "def attention(tokens, scale=1.0):\n    return 1\n", None),
    ("from evo.prelude import *\ndef attention(tokens):\n    return 1\n", None),
    ("def attention(tokens:\n", "syntax error at line 1"),
    ("x = 1\n", "no `attention(tokens)` function defined"),
    ("def attention(t):\n    return 1\ndef attention(t):\n    return 2\n",
     "`attention` defined more than once"),
    ("def attention():\n    return 1\n", "must take exactly one argument (tokens), not 0"),
    ("def attention(a, b):\n    return 1\n", "must take exactly one argument (tokens), not 2"),
    ("def helper(t):\n    return 1\ndef attention(t):\n    return 1\n", "public function or class `helper`"),
    ("def attention(t):\n    return 1\nif __name__ == '__main__':\n    attention([])\n",
     "top-level `if` statement at line 3 not allowed"),
    ("import numpy.linalg\nimport os.path\ndef attention(t):\n    return 1\n",
     "import of `os.path` not allowed (allowed: collections, functools"),
    ("import evo.prelude\ndef attention(t):\n    return 1\n", "use `from evo.prelude import ...`"),
    ("from numpy import *\ndef attention(t):\n    return 1\n", "`from numpy import *` not allowed"),
    ("def attention(t):\n    return vars()\n", "name `vars` not allowed (line 2)"),
    ("def attention(t):\n    return t.__len__()\n", "attribute `.__len__` not allowed (line 2)"),
    ("async def attention(t):\n    return 1\n", "async function `attention` at line 1 not allowed"),
    ("def attention(t):\n    return 1\n" + "#" * 20_000, "program too long: 20,031 characters (limit 20,000)"),
])
def test_static_check_gives_one_line_reason(source, reason):
    got = sandbox.check(source)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got and "\n" not in got, got


def test_run_returns_raw_float64_matrices_per_sentence():
    source = "def attention(tokens):\n    n = len(tokens)\n    return [[i * 10 + j for j in range(n)] for i in range(n)]\n"
    outcome = sandbox.run(source, SENTENCES, LIMITS)
    assert outcome.ok and outcome.error is None and outcome.seconds > 0
    assert [m.shape for m in outcome.matrices] == [(4, 4), (1, 1), (0, 0), (3, 3)]
    assert all(m.dtype == np.float64 for m in outcome.matrices)
    np.testing.assert_array_equal(outcome.matrices[0][2], [20, 21, 22, 23])
    outcome.matrices[0][0, 0] = 5.0   # writable: the evaluator may normalise in place


def test_prelude_is_preinjected_and_importable_both_ways():
    bodies = ["", "from evo.prelude import one_hot, word_start\n",
              "from prelude import one_hot, word_start\n", "from evo.prelude import *\n"]
    for head in bodies:
        source = head + "def attention(tokens):\n    return one_hot(len(tokens), word_start(tokens))\n"
        outcome = sandbox.run(source, SENTENCES, LIMITS)
        assert outcome.ok, (head, outcome.error)
        np.testing.assert_array_equal(
            outcome.matrices[0], prelude.one_hot(4, prelude.word_start(SENTENCES[0])))


def test_bool_and_int_outputs_are_converted_to_float64():
    outcome = sandbox.run("def attention(t):\n    return np.eye(len(t), dtype=bool)\n", SENTENCES, LIMITS)
    assert outcome.ok and outcome.matrices[0].dtype == np.float64
    np.testing.assert_array_equal(outcome.matrices[0], np.eye(4))


def test_failure_names_the_sentence_and_the_line():
    source = ("def attention(tokens):\n    n = len(tokens)\n"
              "    if tokens[-1] == ',':\n        return 1 / 0\n    return np.eye(n)\n")
    outcome = sandbox.run(source, [["a"], ["b"], ["c", ","]], LIMITS)
    assert outcome == sandbox.Outcome(
        False, None, "exception ZeroDivisionError: division by zero on sentence 2 at line 4",
        outcome.seconds)


def test_timeout_names_the_sentence_that_hung():
    source = "def attention(tokens):\n    while tokens[0] == 'stop':\n        pass\n    return np.eye(len(tokens))\n"
    outcome = sandbox.run(source, [["a"], ["b"], ["stop"]], sandbox.Limits(seconds=0.5))
    assert outcome.error == "timeout after 0.5 s on sentence 2"
    assert 0.5 <= outcome.seconds < 5


def test_total_time_limit_stops_a_slow_program():
    source = "def attention(tokens):\n    while True:\n        pass\n"
    outcome = sandbox.run(source, [["a"]] * 3, sandbox.Limits(seconds=5.0, total_seconds=0.5))
    assert outcome.error == "timeout: total limit 0.5 s reached on sentence 0"


def test_results_are_deterministic_per_sentence_whatever_comes_before():
    source = "def attention(tokens):\n    n = len(tokens)\n    return np.random.random((n, n))\n"
    a = sandbox.run(source, [["x", "y"], ["p", "q", "r"]], LIMITS)
    b = sandbox.run(source, [["p", "q", "r"]], LIMITS)
    np.testing.assert_array_equal(a.matrices[1], b.matrices[0])
    assert len({frozenset(hash(t) for t in "abc")}) == 1


def test_tokens_mutated_by_a_program_do_not_leak_into_the_next_sentence():
    source = "def attention(tokens):\n    tokens.append('x')\n    return np.eye(len(tokens) - 1)\n"
    outcome = sandbox.run(source, [["a", "b"], ["c"]], LIMITS)
    assert outcome.ok, outcome.error


def test_bad_inputs_raise_user_error():
    with pytest.raises(UserError, match="sentence 1 must be a list of str tokens"):
        sandbox.run(PREVIOUS, [["a"], ["b", 3]])
    with pytest.raises(UserError, match="time limit must be positive"):
        sandbox.Limits(seconds=0)
    with pytest.raises(UserError, match="at least 64 MB"):
        sandbox.Limits(memory_mb=10)


def _previous_token_sums(k: int) -> float:
    """Returns the sum of the previous-token matrices for a batch (in a worker process)."""
    outcome = sandbox.run(PREVIOUS, [["a"] * (k + 2)] * 3, LIMITS)
    assert outcome.ok, outcome.error
    return sum(float(m.sum()) for m in outcome.matrices)


def test_run_works_from_several_loky_processes_at_once():
    with joblib.parallel_config(backend="loky", n_jobs=2):
        got = joblib.Parallel()(joblib.delayed(_previous_token_sums)(k) for k in range(6))
    assert got == [3.0 * (k + 1) for k in range(6)]


def test_run_works_from_several_threads_at_once():
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(_previous_token_sums, range(8)))
    assert got == [3.0 * (k + 1) for k in range(8)]


def _servers() -> list[psutil.Process]:
    """Returns this process's sandbox servers."""
    return [p for p in psutil.Process().children()
            if "evo.sandbox.worker" in " ".join(p.cmdline())]


def test_a_killed_server_is_replaced_and_the_next_run_succeeds():
    assert sandbox.run(PREVIOUS, [["a", "b"]], LIMITS).ok
    for server in _servers():
        server.kill()
        server.wait()
    outcome = sandbox.run(PREVIOUS, [["a", "b"]], LIMITS)
    assert outcome.ok, outcome.error
    assert len(_servers()) == 1


def test_shutdown_stops_the_server():
    assert sandbox.run(PREVIOUS, [["a"]], LIMITS).ok
    sandbox.shutdown()
    assert _servers() == []
