"""The search loop: vary, evaluate the new programs once, select per head, checkpoint.

    seed:   evaluate the seed programs; cluster heads into islands; select; checkpoint
    repeat: requests  <- target heads and parents (evo.selection)
            children  <- operator.vary(requests)
            new       <- children whose normalised source was never evaluated
            scores    <- evaluate(new)               # one parallel call per generation
            archive, log, the terms new programs invented (evo.search.library), per-head NSGA-II
            selection, checkpoint
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
from evo import run
from evo.search import budgets, cascade, checkpoint, intake, library, novelty, parents, progress, runlog, selection
from evo.search import heads as heads_mod
from evo.errors import UserError
from operators import base

LOG = run.LOG
INTERRUPTED = "interrupted"


Budget = budgets.Budget  # when to stop (evo.search.budgets)


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


Evaluator = Callable[..., list]  # (sources, seen=behaviours) -> list[evo.evaluate.Evaluation], same order


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
        self.novelty = novelty.Novelty()  # programs rejected as the same attention as earlier ones
        self.library = library.Library()  # invented score terms, grown as programs that use them are made
        self.log_bytes = 0
        self.clock = progress.Clock()
        self._committed: dict | None = None
        self._cascade = cascade.Cascade(downstream)   # a no-op without a downstream measure

    # ---- the loop -------------------------------------------------------------------

    def seed(self, programs: list[tuple]) -> None:
        """Evaluates the starting programs (id, source, origin[, account]), clusters heads, checkpoints."""
        fresh = intake.unique([base.Child(source=src, parents=(), operator=origin,
                                          meta={"id": pid, "account": rest[0] if rest else None})
                               for pid, src, origin, *rest in programs])
        results = self.evaluator([c.source for c in fresh])
        if not any(r.ok for r in results):
            first = next((r.error for r in results), "no programs given")
            raise UserError(f"none of the {len(fresh)} starting programs ran (first error: {first})")
        self._add(fresh, results)
        self._start_cascade()
        self._cascade.finish(self.archive)
        profiles = self.archive.iou[self.archive.ok].T  # (K, seeds)
        n_islands = self.settings.islands or max(1, round(np.sqrt(self.archive.n_heads)))
        self.islands = selection.cluster(profiles, n_islands, self.rng)
        self._commit()

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> str:
        """Breeds generations until a budget or `should_stop`; returns why it stopped."""
        self.clock.session(len(self.archive))
        start = self.generation
        self.operator.known(self.archive.by_key)
        self._start_cascade()
        while (reason := self.exhausted()) is None:
            self.operator.library(tuple(self.library.terms))
            requests = parents.requests(budgets.batch(self.budget, self.settings.batch_size, len(self.archive)), self)
            children = self.operator.vary(requests)
            if should_stop():
                return self._interrupt()
            fresh, targets, failed = intake.fresh(children, requests, self.novelty.seen(self.archive.by_key))
            self.operator_failures += failed
            results = self.evaluator([c.source for c in fresh], seen=self.archive.behaviours) if fresh else []
            if should_stop():
                return self._interrupt()
            fresh, results, targets = self.novelty.keep(fresh, results, targets, self.archive)
            self._cascade.finish(self.archive)
            self.heads.aimed(requests)
            self.generation += 1
            before = self.best
            self._add(fresh, results, targets)
            self.operator.outcomes(fresh, [bool(r.ok and (r.iou > before + 1e-6).any()) for r in results])
            self.stall = 0 if fresh else self.stall + 1
            self._commit()
            self._start_cascade()
        if self._cascade.running:
            self._cascade.finish(self.archive)
            self._commit()
        elif self.generation == start:
            self._save_committed()   # a resumed run that stops at once still leaves its checkpoint in today's form
        self._message(f"stopped: {reason}")
        return reason

    def exhausted(self) -> str | None:
        """Returns why the search must stop now, or None."""
        return budgets.stop_reason(self.budget, len(self.archive), self.generation, self.elapsed(), self.stall,
                                   self.settings.stall_generations) or self.operator.exhausted()

    # ---- one generation -------------------------------------------------------------

    def _add(self, children: list[base.Child], results: list, targets: list | None = None) -> None:
        """Puts evaluated children into the archive and the log (evo.search.intake), their terms into the library."""
        self.log_bytes = intake.add(self.archive, self.run_dir / LOG, self.generation, children, results, targets)
        added = self.library.admit(children, results, self.generation)
        for i, term in enumerate(added, start=len(self.library) - len(added) + 1):
            self._message(f"library: {i} terms (+{term.name}: {term.doc})")

    def _start_cascade(self) -> None:
        """Starts the downstream cascade for the archive as committed (see evo.search.cascade)."""
        self._cascade.downstream = self.downstream   # the measure may be plugged in after construction
        self._cascade.start(self.archive, self.settings.cascade_margin, self.settings.cascade_pairs)

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
        self._save_committed()
        return INTERRUPTED

    def _save_committed(self) -> None:
        """Writes the last committed state again, with the seconds spent up to now."""
        assert self._committed is not None
        checkpoint.save(self.run_dir, dict(self._committed, spent=dict(self._committed["spent"], seconds=self.elapsed())))

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

    def population(self) -> list[list[int]]:
        """Returns each island's population: the union of its heads' NSGA-II selections."""
        return self.heads.population(self.islands)

    def elapsed(self) -> float:
        """Returns the wall-clock seconds spent over all sessions of the run."""
        return self.clock.elapsed()

    def snapshot(self) -> progress.Snapshot:
        """Returns the figures the progress display shows."""
        return progress.snapshot(self)

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

