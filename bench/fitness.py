"""Benchmark: IoU scoring throughput of precomputed program outputs against every head.

Prints program x head x sentence scorings per second for `evo.fitness.iou` (all heads in
one packed pass) next to a straightforward per-head Python loop over sentences
(`fitness.iou_rows` per head and sentence), and their ratio. Runs on one core.

    python bench/fitness.py                          # synthetic set, 72 heads (default model's shape)
    python bench/fitness.py --set PATH               # a real attention set (evo capture)
    python bench/fitness.py --heads 700 --sentences 500   # a large model's shape
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from evo import fitness  # noqa: E402


def synthetic(rng: np.random.Generator, heads: int, sentences: int, max_tokens: int):
    """Returns (lengths, per-sentence (K, n, n) float32 causal heads), lengths as in real text."""
    lengths = rng.integers(max_tokens // 4, max_tokens + 1, size=sentences)
    mats = []
    for n in lengths:
        a = np.tril(rng.random((heads, n, n), dtype=np.float32) ** 8)
        mats.append(a / a.sum(-1, keepdims=True))
    return [int(n) for n in lengths], mats


def programs(rng: np.random.Generator, lengths: list[int], count: int, causal: bool):
    """Returns `count` programs' normalised outputs, one (n, n) float64 per sentence each."""
    return [[fitness.normalise(rng.random((n, n)) ** 4, n, causal) for n in lengths]
            for _ in range(count)]


def per_head_loop(mats, outputs) -> np.ndarray:
    """Returns (K,) IoU computed head by head, sentence by sentence (the baseline)."""
    k_total = mats[0].shape[0]
    return np.array([np.mean([fitness.iou_rows(a[k], p).mean() for a, p in zip(mats, outputs)])
                     for k in range(k_total)])


def timed(fn, repeat: int) -> float:
    """Returns the best wall time of `repeat` calls of fn."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default=None, help="a stored attention set directory")
    parser.add_argument("--heads", type=int, default=72)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--programs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)

    if args.set:
        from evo import attention_set

        aset = attention_set.AttentionSet.load(args.set)
        mats = [aset.matrices(i) for i in range(len(aset))]
        causal, source = aset.causal, f"attention set {args.set} ({aset.model})"
    else:
        lengths, mats = synthetic(rng, args.heads, args.sentences, args.max_tokens)
        causal, source = True, "synthetic causal set"
    lengths = [m.shape[-1] for m in mats]
    k_total, s_total = mats[0].shape[0], len(mats)
    start = time.perf_counter()
    targets = fitness.Targets.from_matrices(mats, causal)
    build = time.perf_counter() - start
    outs = programs(rng, lengths, args.programs, causal)
    scorings = args.programs * k_total * s_total

    fast = timed(lambda: [fitness.iou(targets, o) for o in outs], args.repeat)
    packed = [targets.pack(o) for o in outs]
    core = timed(lambda: [fitness.iou_rows_packed(targets, p) for p in packed], args.repeat)
    slow_outs = outs[:max(1, args.programs // 4)]
    slow = timed(lambda: [per_head_loop(mats, o) for o in slow_outs], 1)
    slow_scorings = len(slow_outs) * k_total * s_total
    error = max(float(np.abs(fitness.iou(targets, o) - per_head_loop(mats, o)).max()) for o in slow_outs)

    print(f"{source}: {k_total} heads x {s_total} sentences, {np.mean(lengths):.1f} tokens on average, "
          f"{args.programs} programs")
    print(f"targets packed in {build:.2f} s ({targets.packed.nbytes / 2**20:.0f} MiB)")
    print(f"vectorised, all heads in one pass: {scorings / fast:12,.0f} scorings/s "
          f"({fast / args.programs * 1e3:.1f} ms per program; packing outputs "
          f"{(fast - core) / fast:.0%} of it)")
    print(f"per-head Python loop (baseline):   {slow_scorings / slow:12,.0f} scorings/s")
    print(f"ratio: {(scorings / fast) / (slow_scorings / slow):.1f}x   max |difference| {error:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
