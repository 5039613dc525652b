"""Every hostile program in tests/hostile/ is contained (no file written, no state leak,
the parent fine, no process left behind) and explained (the error names the reason)."""

import math
import pathlib
import string
import collections

import numpy as np
import psutil
import pytest

from evo import prelude, sandbox

HOSTILE = sorted((pathlib.Path(__file__).parent / "hostile").glob("*.py"))
CANARY = pathlib.Path("/tmp/headcode-hostile-canary")
LIMITS = sandbox.Limits(seconds=1.0, memory_mb=256)
TOKENS = [["<bos>", "The", " cat", ",", " the"], ["<bos>", " a", " a", "."]]

# Uses everything a hostile program may try to tamper with: numpy, math, string,
# collections, the prelude and numpy's global RNG.
REFERENCE = '''
import collections, math, string

def attention(tokens):
    n = len(tokens)
    counts = collections.Counter(tokens)
    return (np.eye(n) * math.pi + np.tril(np.ones((n, n))) + len(string.punctuation)
            + one_hot(n, word_start(tokens)) + counts[tokens[1]] + np.random.random())
'''


def _expected_reference() -> list[np.ndarray]:
    """Returns the reference program's matrices computed here, in a trusted process."""
    out = []
    for tokens in TOKENS:
        np.random.seed(0)
        n = len(tokens)
        counts = collections.Counter(tokens)
        out.append(np.eye(n) * math.pi + np.tril(np.ones((n, n))) + len(string.punctuation)
                   + prelude.one_hot(n, prelude.word_start(tokens)) + counts[tokens[1]]
                   + np.random.random())
    return out


def _header(path: pathlib.Path) -> tuple[str, str]:
    """Returns the (tries, expect) comments of a hostile program."""
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# tries: ") and lines[1].startswith("# expect: "), path
    return lines[0][len("# tries: "):], lines[1][len("# expect: "):]


def _server_children() -> list[psutil.Process]:
    """Returns the live processes under this process's sandbox servers."""
    servers = [p for p in psutil.Process().children()
               if "evo.sandbox.worker" in " ".join(p.cmdline())]
    return [c for p in servers for c in p.children(recursive=True)
            if c.status() != psutil.STATUS_ZOMBIE]


def test_corpus_has_at_least_30_programs_each_saying_what_it_tries():
    assert len(HOSTILE) >= 30
    for path in HOSTILE:
        tries, expect = _header(path)
        assert tries and expect


@pytest.mark.parametrize("path", HOSTILE, ids=[p.stem for p in HOSTILE])
def test_hostile_program_is_contained_and_explained(path):
    CANARY.unlink(missing_ok=True)
    _, expect = _header(path)
    source = path.read_text()
    sentences = [["<bos>", " a", " b", " c", "."]]
    outcome = sandbox.run(source, sentences, LIMITS)
    if expect == "ok":
        assert outcome.ok, outcome.error
    else:
        assert not outcome.ok and outcome.matrices is None
        assert expect in outcome.error, outcome.error
        assert "\n" not in outcome.error and len(outcome.error) <= 300
    assert not CANARY.exists(), "a hostile program wrote a file"
    assert _server_children() == [], "a hostile program left a process behind"
    after = sandbox.run(REFERENCE, TOKENS, LIMITS)
    assert after.ok, after.error
    for got, want in zip(after.matrices, _expected_reference()):
        np.testing.assert_allclose(got, want)
