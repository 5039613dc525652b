"""The search loop: vary, evaluate the new programs once, select per head, checkpoint.

    seed:   evaluate the seed programs; cluster heads into islands; select; checkpoint
    repeat: requests  <- target heads and parents (evo.selection)
            children  <- operator.vary(requests)
            new       <- children whose normalised source was never evaluated
            scores    <- evaluate(new)               # one parallel call per generation
            archive, log, per-head NSGA-II selection, checkpoint
            downstream cascade for near-front programs  # in the background, beside the next
                                                        # generation, joined before its add
    until a budget, the operator, or a signal says stop.

The evaluator, the operator and the downstream measure are injected, so tests and the
perplexity objective plug in without touching the loop. All randomness comes from one
`np.random.Generator`; each request gets its own seed from it, so results do not depend
on worker counts. State only changes when a generation commits: a generation interrupted
before that is dropped whole, and the checkpoint is the last committed one.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import numpy as np

from evo.search import archive as archive_mod
from evo import program, run
from evo.search import cascade, checkpoint, parents, progress, runlog, selection
from evo.search import heads as heads_mod
from evo.errors import UserError
from operators import base

LOG = run.LOG
INTERRUPTED = "interrupted"


@dataclasses.dataclass(frozen=True)
class Budget:
    """When to stop; None means unbounded. The first one reached wins."""

    max_programs: int | None = 500  # unique programs evaluated, seeds included
    generations: int | None = None  # generations bred after the seeds
    max_hours: float | None = None  # wall-clock over all sessions of the run


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the engine spends its budget."""

    batch_size: int = 24  # requests per generation
    population: int = 8  # NSGA-II selection size per head
    islands: int | None = None  # head clusters; None: about sqrt(heads)
    crossover_rate: float = 0.6  # share of requests that are crossovers
    migration_rate: float = 0.15  # share of crossover partners taken from another island
    tournament_size: int = 3
    cover_visits: int = 1  # every head gets this many requests before any head gets more (a head's first
                           # request is its table fit: on 270 heads, weighting alone left 48 without one)
    novelty: float = 0.3  # partner tournaments favour programs whose IoU profile differs from the parent's
    pool: int = 48  # per-head NSGA-II candidate pool: top programs by IoU, plus the front
    stall_generations: int = 25  # stop after this many generations with no new program
    cascade_margin: float = 0.1  # downstream cost for front programs within this IoU of the best
    cascade_pairs: int = 2  # downstream measurements per generation at most, spread over the heads (CPU: ~4 s each)


Downstream = cascade.Downstream  # the seam for the perplexity objective (docs/internals.md)


Evaluator = Callable[[list[str]], list]  # sources -> list[evo.evaluate.Evaluation], same order


class Search:
    """One run's engine state and loop."""

    def __init__(self, run_dir: pathlib.Path, evaluator: Evaluator, operator: base.Operator, *,
                 n_heads: int, rng: np.random.Generator, attention_set: dict,
                 settings: Settings = Settings(), budget: Budget = Budget(),
                 downstream: Downstream | None = None, reporter: progress.Reporter | None = None):
        self.run_dir = pathlib.Path(run_dir)
        self.evaluator, self.operator, self.downstream = evaluator, operator, downstream
        self.rng, self.settings, self.budget = rng, settings, budget
        self.attention_set = attention_set
        self.reporter = reporter
        self.archive = archive_mod.Archive(n_heads)
        self.heads = heads_mod.Heads(n_heads)
        self.generation = 0
        self.islands = np.zeros(n_heads, dtype=np.int64)
        self.stall = 0
        self.operator_failures = 0  # children an operator could not produce
        self.log_bytes = 0
        self.clock = progress.Clock()
        self._committed: dict | None = None
        self._cascade: cascade.Cascade | None = None  # made on first use

    # ---- the loop -------------------------------------------------------------------

    def seed(self, programs: list[tuple[str, str, str]]) -> None:
        """Evaluates the starting programs (id, source, origin), clusters heads, checkpoints."""
        fresh = _unique([base.Child(source=src, parents=(), operator=origin, meta={"id": pid})
                         for pid, src, origin in programs])
        results = self.evaluator([c.source for c in fresh])
        if not any(r.ok for r in results):
            first = next((r.error for r in results), "no programs given")
            raise UserError(f"none of the {len(fresh)} starting programs ran (first error: {first})")
        self._add(fresh, results)
        self._start_cascade()
        self._finish_cascade()
        profiles = self.archive.iou[self.archive.ok].T  # (K, seeds)
        n_islands = self.settings.islands or max(1, round(np.sqrt(self.archive.n_heads)))
        self.islands = selection.cluster(profiles, n_islands, self.rng)
        self._commit()

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> str:
        """Breeds generations until a budget or `should_stop`; returns why it stopped."""
        self.clock.session(len(self.archive))
        self.operator.known(self.archive.by_key)
        self._start_cascade()
        while (reason := self.exhausted()) is None:
            requests = parents.requests(self._batch(), self)
            children = self.operator.vary(requests)
            if should_stop():
                return self._interrupt()
            fresh, targets = self._fresh(children, requests)
            results = self.evaluator([c.source for c in fresh]) if fresh else []
            if should_stop():
                return self._interrupt()
            self._finish_cascade()
            self.heads.aimed(requests)
            self.generation += 1
            before = self.best
            self._add(fresh, results, targets)
            self.operator.outcomes(fresh, [bool(r.ok and (r.iou > before + 1e-6).any()) for r in results])
            self.stall = 0 if fresh else self.stall + 1
            self._commit()
            self._start_cascade()
        if self._cascade is not None and self._cascade.running:
            self._finish_cascade()
            self._commit()
        self._message(f"stopped: {reason}")
        return reason

    def exhausted(self) -> str | None:
        """Returns why the search must stop now, or None."""
        b = self.budget
        if b.max_programs is not None and len(self.archive) >= b.max_programs:
            return f"reached --max-programs {b.max_programs} ({len(self.archive)} programs evaluated)"
        if b.generations is not None and self.generation >= b.generations:
            return f"reached --generations {b.generations}"
        if b.max_hours is not None and self.elapsed() >= b.max_hours * 3600:
            return f"reached --max-hours {b.max_hours:g}"
        if self.stall >= self.settings.stall_generations:
            return f"the operators produced no new program in {self.stall} generations"
        return self.operator.exhausted()

    # ---- one generation -------------------------------------------------------------

    def _batch(self) -> int:
        n = self.settings.batch_size
        if self.budget.max_programs is not None:
            n = min(n, self.budget.max_programs - len(self.archive))
        return n

    def _fresh(self, children: list[base.Child], requests: list[base.Request]):
        """Returns the children never evaluated before (first of each kept) and their target heads."""
        assert len(children) == len(requests), "operator returned a different number of children"
        made = [(c, r.heads) for c, r in zip(children, requests) if c.source is not None]
        self.operator_failures += len(children) - len(made)
        kept = _unique([c for c, _ in made], set(self.archive.by_key))
        targets = {id(c): heads for c, heads in made}
        return kept, [targets[id(c)] for c in kept]

    def _add(self, children: list[base.Child], results: list, targets: list | None = None) -> None:
        """Puts evaluated children into the archive and the log."""
        assert len(children) == len(results), "evaluator returned a different number of results"
        entries = []
        for child, res, target in zip(children, results, targets or [()] * len(children)):
            record = archive_mod.Record(
                id=self._new_id(child.meta.get("id") if not child.parents else None), key=res.key,
                source=child.source, parents=tuple(child.parents), operator=child.operator,
                generation=self.generation, length=int(res.length), ok=bool(res.ok),
                error=res.error, seconds=float(res.seconds), target=tuple(target))
            iou = res.iou if res.ok else None
            self.archive.add(record, iou)
            entries.append(runlog.line(record, iou))
        self.log_bytes = runlog.append(self.run_dir / LOG, entries)

    def _new_id(self, wanted: str | None) -> str:
        pid = wanted or f"p{len(self.archive):06d}"
        base_id, n = pid, 1
        while pid in self.archive.by_id:
            n += 1
            pid = f"{base_id}-{n}"
        return pid

    def _start_cascade(self) -> None:
        """Starts the downstream cascade for the archive as committed (see evo.search.cascade)."""
        if self.downstream is not None:
            self._cascade = self._cascade or cascade.Cascade(self.downstream)
            self._cascade.start(self.archive, self.settings.cascade_margin, self.settings.cascade_pairs)

    def _finish_cascade(self) -> None:
        """Joins the downstream cascade in flight and records its costs."""
        if self._cascade is not None:
            self._cascade.finish(self.archive)

    def _commit(self) -> None:
        """Updates head stats, selects per head, writes the checkpoint and reports."""
        self.heads.commit(self.best, self.generation)
        self.heads.select(self.archive, self.settings, self.downstream is not None)
        self._committed = self.state()
        checkpoint.save(self.run_dir, self._committed)
        if self.reporter is not None:
            self.reporter.update(self.snapshot())

    def _interrupt(self) -> str:
        """Drops the generation in flight and rewrites the last committed checkpoint."""
        assert self._committed is not None
        state = dict(self._committed, spent=dict(self._committed["spent"], seconds=self.elapsed()))
        checkpoint.save(self.run_dir, state)
        return INTERRUPTED

    # ---- views ---------------------------------------------------------------------

    @property
    def seeds(self) -> set[int]:
        """Returns the starting programs that ran: the basic patterns crossovers can always draw on."""
        return {i for i, r in enumerate(self.archive.records) if r.generation == 0 and r.ok}

    @property
    def best(self) -> np.ndarray:
        """Returns the best IoU per head over the archive, (K,)."""
        return self.archive.iou.max(axis=0) if len(self.archive) else np.zeros(self.archive.n_heads)

    @property
    def fronts(self) -> list[list[int]]:
        """Returns each head's first non-dominated front (archive rows)."""
        return self.heads.fronts

    @property
    def selected(self) -> list[list[int]]:
        """Returns each head's NSGA-II selection (archive rows)."""
        return self.heads.selected

    def population(self) -> list[list[int]]:
        """Returns each island's population: the union of its heads' NSGA-II selections."""
        n = int(self.islands.max()) + 1
        return [sorted({i for k in np.flatnonzero(self.islands == j) for i in self.heads.selected[k]})
                for j in range(n)]

    def elapsed(self) -> float:
        """Returns the wall-clock seconds spent over all sessions of the run."""
        return self.clock.elapsed()

    def resume_clock(self, spent: float) -> None:
        """Starts this session's clock on top of the seconds earlier sessions spent."""
        self.clock = progress.Clock(spent)

    def snapshot(self) -> progress.Snapshot:
        """Returns the figures the progress display shows."""
        best, b = self.best, self.budget
        return progress.Snapshot(
            generation=self.generation, evaluated=len(self.archive), budget=b.max_programs,
            mean_best=float(best.mean()), heads_above=int((best >= 0.8).sum()),
            n_heads=self.archive.n_heads, errors=int((~self.archive.ok).sum()) + self.operator_failures,
            elapsed=self.elapsed(), eta=self.clock.eta(b, len(self.archive)), operator=self.operator.stats())

    def _message(self, text: str) -> None:
        if self.reporter is not None:
            self.reporter.message(text)

    # ---- checkpoint state ------------------------------------------------------------

    def state(self) -> dict:
        """Returns everything needed to continue exactly (evo.search.checkpoint.encode)."""
        return checkpoint.encode(self)

    def load_state(self, state: dict) -> None:
        """Restores a checkpoint's state into this engine (budget and settings stay as given)."""
        checkpoint.restore(self, state)
        runlog.truncate(self.run_dir / LOG, self.log_bytes)
        self.heads.select(self.archive, self.settings, self.downstream is not None)
        self._committed = self.state()


def _unique(children: list[base.Child], seen: set[str] | None = None) -> list[base.Child]:
    """Returns the children whose normalised source is new, the first of each."""
    seen, out = set(seen or ()), []
    for child in children:
        key = program.key(child.source)
        if key not in seen:
            seen.add(key)
            out.append(child)
    return out
