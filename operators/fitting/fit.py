"""Fitting a mix's weights and exponents to target heads, on a sample of the attention set.

Untrusted parts run only in the sandbox; their normalised outputs come back as numbers,
and the grid search over weights and exponents runs here, in numpy.
"""

import dataclasses
import pathlib

import numpy as np

from evo import fitness, prelude, program
from operators.shared import basis, mixing, rendering
from operators.shared.ast_edits import NotApplicable

POWERS = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0)
COARSE = np.linspace(0.0, 1.0, 21)     # weight grid, step 0.05
FINE = np.arange(-0.04, 0.0401, 0.01)  # refinement around the best coarse weight
_CACHE_SIZE = 256


@dataclasses.dataclass(frozen=True)
class Result:
    weights: tuple[float, ...]
    powers: tuple[float, ...]
    score: float  # mean IoU over the target heads on the sample


class Sample:
    """A fixed, evenly spaced sample of an attention set: tokens and packed target rows."""

    def __init__(self, aset_path: pathlib.Path, n_sentences: int):
        from evo import attention_set  # lazily: building an operator must not read the set
        aset = attention_set.AttentionSet.load(aset_path)
        self.causal = aset.causal
        self.n_heads_total = aset.n_layers * aset.n_heads
        picks = np.unique(np.linspace(0, len(aset) - 1, min(n_sentences, len(aset))).round().astype(int))
        self.tokens = [aset.tokens[i] for i in picks]
        self.lengths = [len(t) for t in self.tokens]
        self.width = max(self.lengths)
        self.row_weight = np.concatenate([np.full(n, 1.0 / (n * len(picks))) for n in self.lengths])  # (R,)
        shape = (self.n_heads_total, int(sum(self.lengths)), self.width)
        self.targets = aset.derived(f"fit-sample-{len(picks)}", shape,   # (K, R, N), shared by the workers
                                    lambda out: self._pack_into(out, (aset.matrices(int(i)) for i in picks)))

    def pack(self, matrices: list[np.ndarray]) -> np.ndarray:
        """Returns per-sentence (..., n, n) matrices stacked row-wise, zero padded: (..., R, N)."""
        lead = matrices[0].shape[:-2]
        out = np.empty(lead + (int(sum(self.lengths)), self.width), dtype=np.float32)
        self._pack_into(out, matrices)
        return out

    def _pack_into(self, out: np.ndarray, matrices) -> None:
        """Writes per-sentence (..., n, n) matrices into `out` stacked row-wise, zero padded."""
        out[...] = 0.0
        r = 0
        for m, n in zip(matrices, self.lengths):
            out[..., r:r + n, :n] = m
            r += n


class Fitter:
    """Runs parts of programs in the sandbox (cached) and fits their mixing weights."""

    def __init__(self, aset_path: pathlib.Path, n_sentences: int = 32, limits=None):
        self.aset_path = pathlib.Path(aset_path)
        self.n_sentences = n_sentences
        self.limits = limits
        self._sample: Sample | None = None
        self._parts: dict[str, np.ndarray | str] = {}
        self._basis: dict[str, np.ndarray] = {}
        self._annotated = False

    @property
    def sample(self) -> Sample:
        """Returns the sample, loading the attention set on first use."""
        if self._sample is None:
            self._sample = Sample(self.aset_path, self.n_sentences)
        return self._sample

    def part(self, mix: mixing.Mix, func: str) -> np.ndarray:
        """Returns the helper's output on the sample, rows normalised: (R, N)."""
        name = basis.of_term(mix, func, self.sample.causal)
        if name is not None:
            return self.basis_part(name)
        source = rendering.render(mixing.Mix(mix.imports, mix.defs, [mixing.Term(1.0, func)]), self.sample.causal)
        key = program.key(source)
        if key not in self._parts:
            if len(self._parts) >= _CACHE_SIZE:
                self._parts.pop(next(iter(self._parts)))
            self._parts[key] = self._run(source)
        found = self._parts[key]
        if isinstance(found, str):
            raise NotApplicable(found)
        return found

    def basis_part(self, name: str) -> np.ndarray:
        """Returns a basis helper's output on the sample, rows normalised, computed in-process: (R, N)."""
        if name not in self._basis:
            if name in prelude.LINGUISTIC_PATTERNS and not self._annotated:
                from evo import linguistic  # the set's annotations, parsed once beside it (trusted code)

                self._annotated = linguistic.preload(self.aset_path)
            self._basis[name] = self._normalised(basis.matrices(name, self.sample.tokens, self.sample.causal))
        return self._basis[name]

    def screen(self, current: np.ndarray, cand: np.ndarray, free: bool,
               heads: tuple[int, ...]) -> tuple[float, float, float]:
        """Returns (score, share, exponent) of the best `share * cand ** q + (1 - share) * current`.

        `current` is the mix so far with rows summing to 1 (or None to score `cand` alone).
        """
        targets, rw = self.sample.targets[list(heads)], self.sample.row_weight
        best = (-1.0, 0.0, 1.0)
        for q in (POWERS if free else (1.0,)):
            shaped = _powered(cand, q)
            if current is None:
                best = max(best, (float(_scores(shaped[None], targets, rw)[0]), 1.0, q))
                continue
            mixes = COARSE[:, None, None] * shaped[None] + (1.0 - COARSE)[:, None, None] * current
            scores = _scores(mixes, targets, rw)
            g = int(np.argmax(scores))
            best = max(best, (float(scores[g]), float(COARSE[g]), q))
        return best

    def mixed(self, parts: list[np.ndarray], weights: list[float], powers: list[float]) -> np.ndarray:
        """Returns the mix as written, rows summing to 1: (R, N)."""
        total = sum(weights) or 1.0
        return _renorm(sum(w / total * _powered(p, q) for p, w, q in zip(parts, weights, powers)))

    def _run(self, source: str) -> np.ndarray | str:
        """Returns the program's normalised output on the sample, or the one-line failure."""
        from evo import sandbox
        limits = self.limits if self.limits is not None else sandbox.Limits()
        outcome = sandbox.run(source, self.sample.tokens, limits)
        if not outcome.ok:
            return f"part failed in the sandbox: {outcome.error}"
        try:
            return self._normalised(outcome.matrices)
        except ValueError as err:
            return f"part output rejected: {err}"

    def _normalised(self, raws: list[np.ndarray]) -> np.ndarray:
        causal = self.sample.causal
        return self.sample.pack([fitness.normalise(m, n, causal) for m, n in zip(raws, self.sample.lengths)])

    def fit(self, parts: list[np.ndarray], weights: list[float], powers: list[float],
            free_power: list[bool], heads: tuple[int, ...]) -> Result:
        """Returns weights and exponents that maximise the mean IoU with the heads (coordinate ascent)."""
        return _ascend(parts, weights, powers, free_power, self.sample.targets[list(heads)], self.sample.row_weight)

    def score_many(self, parts: list[np.ndarray], weightings: list, powers: list[float],
                   heads: tuple[int, ...]) -> np.ndarray:
        """Returns the mean IoU with the heads of the mix under each weighting: (G,)."""
        shaped = np.stack([_powered(p, q) for p, q in zip(parts, powers)])  # (T, R, N)
        mixes = np.tensordot(np.asarray(weightings, dtype=np.float64), shaped, axes=1)  # (G, R, N)
        return _scores(mixes, self.sample.targets[list(heads)], self.sample.row_weight)

    def score(self, parts: list[np.ndarray], weights: list[float], powers: list[float],
              heads: tuple[int, ...]) -> float:
        """Returns the mean IoU with the heads of the mix as written."""
        shaped = [_powered(p, q) for p, q in zip(parts, powers)]
        mix = sum(w * p for w, p in zip(weights, shaped))[None]
        return float(_scores(mix, self.sample.targets[list(heads)], self.sample.row_weight)[0])


def graded(part: np.ndarray) -> bool:
    """Returns whether some row holds two different non-zero values, so an exponent changes it."""
    peak = part.max(axis=-1, keepdims=True)
    return bool(np.any((part > 0) & (part < peak * (1 - 1e-6))))


def _powered(part: np.ndarray, power: float) -> np.ndarray:
    """Returns the part raised to `power`, rows renormalised."""
    return part if power == 1.0 else _renorm(part.astype(np.float64) ** power)


def _renorm(m: np.ndarray) -> np.ndarray:
    s = m.sum(axis=-1, keepdims=True)
    return np.divide(m, s, out=np.zeros_like(m, dtype=np.float64), where=s > 0)


def packed_iou(rows: np.ndarray, target: np.ndarray, row_weight: np.ndarray) -> np.ndarray:
    """Returns the row-weighted mean IoU of packed attention rows (..., R, N) against target rows (R, N)."""
    num = np.minimum(rows, target).sum(-1)  # (..., R)
    den = np.maximum(rows, target).sum(-1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0) @ row_weight


def _scores(mixes: np.ndarray, targets: np.ndarray, row_weight: np.ndarray) -> np.ndarray:
    """Returns (G,) mean over heads of the row-weighted IoU; mixes (G, R, N), targets (H, R, N)."""
    mixes = _renorm(mixes)
    return sum(packed_iou(mixes, t, row_weight) for t in targets) / len(targets)


def _ascend(parts, weights, powers, free_power, targets, row_weight) -> Result:
    """Returns the best weights and exponents found by coordinate ascent from the given ones."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    p = list(powers)
    shaped = [_powered(x, q) for x, q in zip(parts, p)]
    best = _scores(sum(a * x for a, x in zip(w, shaped))[None], targets, row_weight)[0]
    for _ in range(3):
        improved = False
        for k in range(len(parts)):
            for q in (POWERS if free_power[k] else (p[k],)):
                cand = shaped[k] if q == p[k] else _powered(parts[k], q)
                for grid in (COARSE, np.clip(w[k] + FINE, 0.0, 1.0)):
                    t, s = _line(cand, shaped, w, k, grid, targets, row_weight)
                    if s > best + 1e-6:
                        best, improved = s, True
                        w = _moved(w, k, t)
                        p[k], shaped[k] = q, cand
        if not improved:
            break
    return Result(tuple(float(x) for x in w), tuple(p), float(best))


def _line(cand, shaped, w, k, grid, targets, row_weight):
    """Returns the best share t of part k (rest scaled by 1 - t) on the grid, and its score."""
    rest_mass = 1.0 - w[k]
    rest = sum(w[j] * shaped[j] for j in range(len(shaped)) if j != k) if len(shaped) > 1 else 0.0
    if rest_mass > 1e-9 and len(shaped) > 1:
        rest = rest / rest_mass
    else:
        grid = np.array([1.0])
    mixes = grid[:, None, None] * cand[None] + (1.0 - grid)[:, None, None] * rest
    scores = _scores(mixes, targets, row_weight)
    g = int(np.argmax(scores))
    return float(grid[g]), float(scores[g])


def _moved(w: np.ndarray, k: int, t: float) -> np.ndarray:
    """Returns weights where part k has share t and the others keep their proportions."""
    rest = w.copy()
    rest[k] = 0.0
    rest = rest / rest.sum() * (1.0 - t) if rest.sum() > 0 else rest
    rest[k] = t
    return rest
