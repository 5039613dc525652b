"""Evaluating many programs against an attention set, in parallel on a pool of workers.

Each task takes a batch of programs, runs each in the sandbox (whose own child
process executes the untrusted code) on the set's tokens, normalises the raw outputs and
scores them against every head. Scoring happens in the worker, a trusted process that
loads the attention set and its packed targets once and keeps them for later batches.

The tasks run on an `evo.parallel.Pool` (loky processes here, or a Dask cluster); with Dask
the attention set's path must be readable on every worker (a shared file system).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import pathlib
import time

import numpy as np

from evo import fitness, parallel, program, sandbox
from evo.errors import UserError

BACKENDS = parallel.BACKENDS
# Programs per task at most: large enough to amortise dispatch, small enough to balance.
MAX_BATCH = 8
DECIMALS = 4  # rounding before fingerprinting (`behaviour`): programs that differ below it attend the same
DUPLICATE = "attends exactly as an earlier program (the same matrices on every sentence); not scored"


@dataclasses.dataclass(frozen=True)
class Evaluation:
    key: str                     # program.key(source)
    ok: bool
    iou: np.ndarray | None       # (K,) float32 per head; None when failed (worst fitness)
    length: int                  # AST nodes; 0 when the source does not parse
    error: str | None            # one line, when failed
    seconds: float               # wall time of running and scoring
    behaviour: str | None = None  # fingerprint of its matrices on every sentence of the set (when it ran)
    duplicate: bool = False      # its behaviour was in `seen`: not scored, and not to be counted as a program


@dataclasses.dataclass
class _Loaded:
    """What a worker keeps per attention set: the tokens, the mask kind and the packed targets."""
    tokens: list[list[str]]
    causal: bool
    targets: fitness.Targets


# Per-process cache: attention-set path -> (meta.json mtime, loaded set).
_CACHE: dict[str, tuple[float, _Loaded]] = {}


def _stamp(path: pathlib.Path) -> float:
    """Returns a change stamp for the attention set at `path` (its meta.json mtime, or 0)."""
    meta = path / "meta.json"
    return meta.stat().st_mtime if meta.exists() else 0.0


def load_targets(aset_path) -> _Loaded:
    """Returns the attention set at `aset_path` packed for scoring, loaded once per process."""
    from evo import attention_set

    path = pathlib.Path(aset_path).resolve()
    stamp = _stamp(path)
    hit = _CACHE.get(str(path))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    aset = attention_set.AttentionSet.load(path)
    loaded = _Loaded([list(t) for t in aset.tokens], bool(aset.causal),
                     fitness.Targets.from_set(aset))
    from evo import linguistic

    linguistic.preload(path, loaded.tokens)  # the set's annotations, parsed once beside it (if any)
    from evo import affinity

    affinity.preload(path)   # and its affinities between tokens read alone (if any)
    _CACHE.clear()   # one set per worker at a time: packed targets can be large
    _CACHE[str(path)] = (stamp, loaded)
    return loaded


def score_outputs(loaded: _Loaded, matrices: list[np.ndarray]) -> tuple[np.ndarray | None, str | None]:
    """Returns (iou per head, None) for raw program outputs, or (None, reason) when malformed."""
    clean, error = normalised(matrices, loaded.tokens, loaded.causal)
    return (None, error) if clean is None else (fitness.iou(loaded.targets, clean), None)


def normalised(matrices: list[np.ndarray], sentences: list[list[str]],
               causal: bool) -> tuple[list[np.ndarray] | None, str | None]:
    """Returns (raw program outputs normalised, one per sentence, None), or (None, reason) when malformed."""
    clean = []
    for s, (raw, toks) in enumerate(zip(matrices, sentences)):
        try:
            clean.append(fitness.normalise(raw, len(toks), causal))
        except ValueError as err:
            return None, f"{err} on sentence {s}"
    if len(clean) != len(sentences):
        return None, f"{len(clean)} outputs for {len(sentences)} sentences"
    return clean, None


def outputs(source: str, sentences: list[list[str]], causal: bool,
            limits: sandbox.Limits = sandbox.Limits()) -> tuple[list[np.ndarray] | None, str | None]:
    """Returns the program's well-formed (n, n) matrices per sentence (sandbox, then normalise), or the reason."""
    outcome = sandbox.run(source, sentences, limits)
    if not outcome.ok:
        return None, outcome.error or "failed without a reason"
    return normalised(outcome.matrices, sentences, causal)


def behaviour(matrices: list[np.ndarray]) -> str:
    """Returns a fingerprint of normalised matrices (rows sum to 1, so any scale of a program's output gives
    the same), rounded to DECIMALS: two programs with one fingerprint attend the same on those sentences."""
    digest = hashlib.sha256()
    for m in matrices:
        digest.update(np.asarray(m.shape, dtype=np.int64).tobytes())
        digest.update((np.round(np.asarray(m, dtype=np.float64), DECIMALS) + 0.0).astype(np.float32).tobytes())
    return digest.hexdigest()[:24]


def evaluate_one(source: str, loaded: _Loaded, limits: sandbox.Limits, seen: frozenset = frozenset()) -> Evaluation:
    """Returns the evaluation of one program against every head of a loaded set.

    A program whose behaviour (evo.evaluate.behaviour of its matrices on every sentence) is in
    `seen` is not scored: it would score exactly as that earlier program on every head; it comes
    back `duplicate`, failed, with that behaviour.
    """
    start = time.perf_counter()
    try:
        size = program.length(source)
    except ValueError:
        size = 0
    outcome = sandbox.run(source, loaded.tokens, limits)
    found, scores = None, None
    if outcome.ok:
        clean, error = normalised(outcome.matrices, loaded.tokens, loaded.causal)
        found = behaviour(clean) if clean is not None else None
        if found is not None and found in seen:
            return Evaluation(program.key(source), False, None, size, DUPLICATE, time.perf_counter() - start,
                              found, True)
        scores = fitness.iou(loaded.targets, clean) if clean is not None else None
    else:
        error = outcome.error or "failed without a reason"
    return Evaluation(program.key(source), scores is not None, scores, size, error,
                      time.perf_counter() - start, found if scores is not None else None)


def _evaluate_batch(sources: list[str], aset_path: str, limits: sandbox.Limits,
                    seen: frozenset = frozenset()) -> list[Evaluation]:
    """Returns the evaluations of a batch of programs (runs inside a worker)."""
    loaded = load_targets(aset_path)
    return [evaluate_one(s, loaded, limits, seen) for s in sources]


def batches(n_items: int, workers: int) -> list[range]:
    """Returns contiguous index ranges: about four per worker, at most MAX_BATCH items each."""
    if n_items == 0:
        return []
    size = max(1, min(MAX_BATCH, math.ceil(n_items / (4 * max(1, workers)))))
    return [range(i, min(i + size, n_items)) for i in range(0, n_items, size)]


def evaluate(sources: list[str], aset_path, limits: sandbox.Limits = sandbox.Limits(),
             workers: int = 1, backend: str = "loky", pool: parallel.Pool | None = None,
             seen: frozenset = frozenset()) -> list[Evaluation]:
    """Returns one Evaluation per source, in input order, independent of `workers`, backend and pool.

    With `pool` the work goes to its workers; otherwise a pool of `backend` and `workers` is
    made for this call. Programs whose behaviour is in `seen` come back `duplicate`, unscored.
    """
    if pool is None:
        with parallel.Pool(backend, workers) as made:
            return evaluate(sources, aset_path, limits, pool=made, seen=seen)
    path = pathlib.Path(aset_path)
    if not path.exists():
        raise UserError(f"attention set {path} does not exist")
    sources = list(sources)
    _read_affinities(sources, path)
    chunks = batches(len(sources), pool.size)
    seen = frozenset(seen)
    results = pool.starmap(_evaluate_batch, [([sources[i] for i in r], str(path), limits, seen) for r in chunks])
    return [e for batch in results for e in batch]


def _read_affinities(sources: list[str], path: pathlib.Path) -> None:
    """Reads the set's affinities once, here, where a program asks for them (evo.affinity), so no worker loads
    the model; where they cannot be read, the programs that ask fail with the reason, one by one."""
    from evo import affinity, attention_set

    if any(affinity.uses(s) for s in sources):
        try:
            affinity.ensure(attention_set.AttentionSet.load(path))
        except UserError:
            return
