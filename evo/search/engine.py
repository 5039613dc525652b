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
import time
from typing import Callable

import numpy as np

from evo.search import archive as archive_mod
from evo import program, run
from evo.search import cascade, checkpoint, progress, runlog, selection
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
    novelty: float = 0.3  # partner tournaments favour programs whose IoU profile differs from the parent's
    pool: int = 48  # per-head NSGA-II candidate pool: top programs by IoU, plus the front
    stall_generations: int = 25  # stop after this many generations with no new program
    cascade_margin: float = 0.1  # downstream cost for front programs within this IoU of the best


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
        self.generation = 0
        self.islands = np.zeros(n_heads, dtype=np.int64)
        self.improved_at = np.zeros(n_heads, dtype=np.int64)
        self.since = np.zeros(n_heads, dtype=np.int64)
        self.selected: list[list[int]] = [[] for _ in range(n_heads)]
        self.fronts: list[list[int]] = [[] for _ in range(n_heads)]
        self.stall = 0
        self.operator_failures = 0  # children an operator could not produce
        self.log_bytes = 0
        self._last_best = np.full(n_heads, -1.0)
        self._spent_before = 0.0
        self._t0 = time.monotonic()
        self._session_start = 0  # programs evaluated when this session began
        self._committed: dict | None = None
        self._cascade: cascade.Cascade | None = None  # made on first use

    # ---- the loop -------------------------------------------------------------------

    def seed(self, programs: list[tuple[str, str, str]]) -> None:
        """Evaluates the starting programs (id, source, origin), clusters heads, checkpoints."""
        fresh, seen = [], set()
        for pid, source, origin in programs:
            key = program.key(source)
            if key not in seen:
                seen.add(key)
                fresh.append(base.Child(source=source, parents=(), operator=origin, meta={"id": pid}))
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
        self._session_start = len(self.archive)
        self._start_cascade()
        while (reason := self.exhausted()) is None:
            requests = self._requests(self._batch())
            children = self.operator.vary(requests)
            if should_stop():
                return self._interrupt()
            fresh, targets = self._fresh(children, requests)
            results = self.evaluator([c.source for c in fresh]) if fresh else []
            if should_stop():
                return self._interrupt()
            self._finish_cascade()
            for r in requests:
                self.since[r.heads[0]] += 1
            self.generation += 1
            self._add(fresh, results, targets)
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
        hook = getattr(self.operator, "exhausted", None)
        return hook() if hook else None

    # ---- one generation -------------------------------------------------------------

    def _batch(self) -> int:
        n = self.settings.batch_size
        if self.budget.max_programs is not None:
            n = min(n, self.budget.max_programs - len(self.archive))
        return n

    def _requests(self, n: int) -> list[base.Request]:
        """Returns n requests, each aimed at one head chosen where the search can gain most."""
        s, iou, rng = self.settings, self.archive.iou, self.rng
        weights = selection.head_weights(self.best, self.improved_at, self.since, self.generation)
        population, seeds = self.population(), self._seeds
        requests = []
        for _ in range(n):
            k = int(rng.choice(len(weights), p=weights))
            first = selection.tournament(self.selected[k], iou[:, k], s.tournament_size, rng)
            parents = [first]
            if rng.random() < s.crossover_rate:
                island = int(self.islands[k])
                if len(population) > 1 and rng.random() < s.migration_rate:
                    island = int(rng.choice([j for j in range(len(population)) if j != island]))
                pool = sorted((set(population[island]) | seeds) - {first})
                if pool:
                    score = selection.partner_scores(iou, first, k, s.novelty)
                    parents.append(selection.tournament(pool, score, s.tournament_size, rng))
            kind = "crossover" if len(parents) == 2 else "mutate"
            seed = int(rng.integers(0, 2**63 - 1))
            requests.append(base.Request(kind, tuple(self._parent(i) for i in parents), (k,), seed))
        return requests

    def _parent(self, i: int) -> base.Parent:
        r = self.archive.records[i]
        return base.Parent(id=r.id, source=r.source, iou=self.archive.iou[i].copy(), length=r.length)

    def _fresh(self, children: list[base.Child], requests: list[base.Request]):
        """Returns the children never evaluated before (first of each kept) and their target heads."""
        assert len(children) == len(requests), "operator returned a different number of children"
        out, targets, seen = [], [], set(self.archive.by_key)
        for child, request in zip(children, requests):
            if child.source is None:
                self.operator_failures += 1
                continue
            key = program.key(child.source)
            if key not in seen:
                seen.add(key)
                out.append(child)
                targets.append(request.heads)
        return out, targets

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
        """Starts the downstream cascade for the archive as committed (see evo.cascade)."""
        if self.downstream is not None:
            self._cascade = self._cascade or cascade.Cascade(self.downstream)
            self._cascade.start(self.archive, self.settings.cascade_margin)

    def _finish_cascade(self) -> None:
        """Joins the downstream cascade in flight and records its costs."""
        if self._cascade is not None:
            self._cascade.finish(self.archive)

    def _commit(self) -> None:
        """Updates head stats, selects per head, writes the checkpoint and reports."""
        best = self.best
        improved = best > self._last_best + 1e-6
        self.improved_at[improved] = self.generation
        self.since[improved] = 0
        self._last_best = best
        self._select()
        self._committed = self.state()
        checkpoint.save(self.run_dir, self._committed)
        if self.reporter is not None:
            self.reporter.update(self.snapshot())

    def _select(self) -> None:
        a, s = self.archive, self.settings
        iou, lengths, ok = a.iou, a.lengths, a.ok
        for k in range(a.n_heads):
            ppl = a.ppl_column(k) if self.downstream is not None else None
            extra = np.flatnonzero(~np.isnan(ppl)) if ppl is not None else None
            pool = selection.candidates(iou[:, k], lengths, ok, s.pool, extra)
            table = selection.objectives(iou[:, k], lengths, ppl)
            self.selected[k] = selection.nsga2(table, pool, s.population)
            self.fronts[k] = selection.front(table, pool)

    def _interrupt(self) -> str:
        """Drops the generation in flight and rewrites the last committed checkpoint."""
        assert self._committed is not None
        state = dict(self._committed, spent=dict(self._committed["spent"], seconds=self.elapsed()))
        checkpoint.save(self.run_dir, state)
        return INTERRUPTED

    # ---- views ---------------------------------------------------------------------

    @property
    def _seeds(self) -> set[int]:
        """Returns the starting programs that ran: the basic patterns crossovers can always draw on."""
        return {i for i, r in enumerate(self.archive.records) if r.generation == 0 and r.ok}

    @property
    def best(self) -> np.ndarray:
        """Returns the best IoU per head over the archive, (K,)."""
        return self.archive.iou.max(axis=0) if len(self.archive) else np.zeros(self.archive.n_heads)

    def population(self) -> list[list[int]]:
        """Returns each island's population: the union of its heads' NSGA-II selections."""
        n = int(self.islands.max()) + 1
        return [sorted({i for k in np.flatnonzero(self.islands == j) for i in self.selected[k]})
                for j in range(n)]

    def elapsed(self) -> float:
        return self._spent_before + time.monotonic() - self._t0

    def snapshot(self) -> progress.Snapshot:
        best, b = self.best, self.budget
        errors = int((~self.archive.ok).sum()) + self.operator_failures
        stats = getattr(self.operator, "stats", None)
        return progress.Snapshot(
            generation=self.generation, evaluated=len(self.archive), budget=b.max_programs,
            mean_best=float(best.mean()), heads_above=int((best >= 0.8).sum()),
            n_heads=self.archive.n_heads, errors=errors, elapsed=self.elapsed(), eta=self._eta(),
            operator=stats() if stats else {})

    def _eta(self) -> float | None:
        b, etas = self.budget, []
        session = time.monotonic() - self._t0
        done = len(self.archive) - self._session_start
        if b.max_programs is not None and done > 0:
            etas.append(session / done * max(0, b.max_programs - len(self.archive)))
        if b.max_hours is not None:
            etas.append(max(0.0, b.max_hours * 3600 - self.elapsed()))
        return min(etas) if etas else None

    def _message(self, text: str) -> None:
        if self.reporter is not None:
            self.reporter.message(text)

    # ---- checkpoint state ------------------------------------------------------------

    def state(self) -> dict:
        """Returns everything needed to continue exactly, as JSON-able data."""
        ids = lambda idx: [self.archive.records[i].id for i in idx]  # noqa: E731
        state_dict = getattr(self.operator, "state_dict", None)
        return {
            "generation": self.generation,
            "spent": {"programs": len(self.archive), "seconds": self.elapsed()},
            "budgets": dataclasses.asdict(self.budget),
            "settings": dataclasses.asdict(self.settings),
            "attention_set": self.attention_set,
            "archive": self.archive.state(),
            "islands": self.islands.tolist(),
            "heads": {"improved_at": self.improved_at.tolist(), "since": self.since.tolist(),
                      "best": [round(float(x), 6) for x in self.best]},
            "population": [ids(p) for p in self.population()],
            "fronts": [ids(f) for f in self.fronts],
            "rng": self.rng.bit_generator.state,
            "operator": state_dict() if state_dict else {},
            "operator_failures": self.operator_failures,
            "log_bytes": self.log_bytes,
            "stall": self.stall,
        }

    def load_state(self, state: dict) -> None:
        """Restores a checkpoint's state into this engine (budget and settings stay as given)."""
        self.archive = archive_mod.Archive.from_state(state["archive"])
        self.generation = int(state["generation"])
        self.islands = np.asarray(state["islands"], dtype=np.int64)
        self.improved_at = np.asarray(state["heads"]["improved_at"], dtype=np.int64)
        self.since = np.asarray(state["heads"]["since"], dtype=np.int64)
        self._last_best = self.best
        self.rng.bit_generator.state = state["rng"]
        loader = getattr(self.operator, "load_state_dict", None)
        if loader:
            loader(state.get("operator", {}))
        self.operator_failures = int(state.get("operator_failures", 0))
        self.stall = int(state.get("stall", 0))
        self.log_bytes = int(state["log_bytes"])
        self._spent_before = float(state["spent"]["seconds"])
        self._t0 = time.monotonic()
        runlog.truncate(self.run_dir / LOG, self.log_bytes)
        self._select()
        self._committed = self.state()
