"""Sandbox throughput: programs/s on 50 sentences, and per-program overhead as ratios.

Compares, for the same programs and sentences:
  in-process  calling attention() directly (no isolation: the floor)
  fork server sandbox.run: a pre-started server forks a fresh child per program
  fresh       a new `python -m evo.sandbox.worker` process per program (the old way)

Run: python bench/sandbox.py [--programs 60] [--sentences 50] [--tokens 24]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evo import sandbox
from evo.sandbox import child as sandbox_child

PROGRAMS = [
    "def attention(tokens):\n    return np.eye(len(tokens), k=-1)\n",
    "def attention(tokens):\n    return one_hot(len(tokens), [0] * len(tokens))\n",
    "def attention(tokens):\n    return np.tril(same_token(tokens), -1)\n",
    "def attention(tokens):\n    n = len(tokens)\n"
    "    prev = [previous_occurrence(tokens, i) for i in range(n)]\n"
    "    return one_hot(n, [None if j is None else j + 1 for j in prev])\n",
    "def attention(tokens):\n    return one_hot(len(tokens), most_recent(tokens, is_delimiter, include_self=False))\n",
    "def attention(tokens):\n    return one_hot(len(tokens), word_start(tokens))\n",
]
WORDS = "the cat sat on the mat , and then the dog ran to the cat . It was 42 years old".split()


def _sentences(count: int, n: int, rng: np.random.Generator) -> list[list[str]]:
    """Returns count synthetic token lists of length n, starting with <bos>."""
    return [["<bos>"] + [(" " if rng.random() < 0.8 else "") + w
                         for w in rng.choice(WORDS, n - 1)] for _ in range(count)]


def _in_process(source: str, sentences: list[list[str]]) -> list[np.ndarray]:
    """Returns the program's matrices computed in this process, with no isolation."""
    scope = sandbox_child.program_globals()
    exec(compile(source, "<program>", "exec"), scope)
    return [np.asarray(scope["attention"](list(t)), dtype=np.float64) for t in sentences]


def _fresh(source: str, sentences: list[list[str]], limits: sandbox.Limits) -> sandbox.Outcome:
    """Returns the outcome from a brand-new worker process started for this one program."""
    sandbox.shutdown()
    try:
        return sandbox.run(source, sentences, limits)
    finally:
        sandbox.shutdown()


def _time(fn, sources: list[str]) -> float:
    """Returns seconds per program for fn over the sources."""
    start = time.perf_counter()
    for source in sources:
        fn(source)
    return (time.perf_counter() - start) / len(sources)


def main() -> None:
    """Prints programs/s and per-program overhead for the three ways of running programs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=60)
    parser.add_argument("--sentences", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=24)
    args = parser.parse_args()
    sentences = _sentences(args.sentences, args.tokens, np.random.default_rng(0))
    sources = [PROGRAMS[i % len(PROGRAMS)] for i in range(args.programs)]
    limits = sandbox.Limits()
    sandbox_child.warm_up()
    for source in PROGRAMS:   # same answers in and out of the sandbox
        outcome = sandbox.run(source, sentences, limits)
        assert outcome.ok, outcome.error
        for a, b in zip(outcome.matrices, _in_process(source, sentences)):
            np.testing.assert_array_equal(a, b)
    t_in = _time(lambda s: _in_process(s, sentences), sources)
    t_fork = _time(lambda s: sandbox.run(s, sentences, limits), sources)
    t_fresh = _time(lambda s: _fresh(s, sentences, limits), sources[: max(6, args.programs // 6)])
    print(f"{args.programs} programs x {args.sentences} sentences x {args.tokens} tokens")
    print(f"{'mode':<12} {'programs/s':>11} {'ms/program':>11} {'overhead ms':>12} {'x in-process':>13}")
    for name, t in (("in-process", t_in), ("fork server", t_fork), ("fresh", t_fresh)):
        print(f"{name:<12} {1 / t:>11.1f} {t * 1e3:>11.2f} {(t - t_in) * 1e3:>12.2f} {t / t_in:>13.1f}")
    print(f"fork server is {t_fresh / t_fork:.1f}x faster than a fresh process per program")


if __name__ == "__main__":
    main()
