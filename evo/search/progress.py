"""Progress: a rich Live panel on a terminal, plain log lines everywhere else."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import TextIO


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Where a search stands after a generation."""

    generation: int
    evaluated: int
    budget: int | None  # --max-programs, None when unbounded
    mean_best: float  # mean over heads of the best IoU
    heads_above: int  # heads with best IoU >= 0.8
    n_heads: int
    errors: int
    elapsed: float  # seconds, over all sessions of the run
    eta: float | None  # seconds, None when unknown
    operator: dict = dataclasses.field(default_factory=dict)


class Clock:
    """Wall-clock time over all sessions of a run, and the time left to the budget at this session's rate."""

    def __init__(self, spent_before: float = 0.0):
        self.spent_before = spent_before
        self.t0 = time.monotonic()
        self.start_programs = 0  # programs evaluated when this session began

    def session(self, programs: int) -> None:
        """Notes how many programs the run had when this session began."""
        self.start_programs = programs

    def elapsed(self) -> float:
        """Returns the seconds over all sessions."""
        return self.spent_before + time.monotonic() - self.t0

    def eta(self, budget, programs: int) -> float | None:
        """Returns the seconds left to the nearest budget, or None when unknown."""
        etas, session = [], time.monotonic() - self.t0
        done = programs - self.start_programs
        if budget.max_programs is not None and done > 0:
            etas.append(session / done * max(0, budget.max_programs - programs))
        if budget.max_hours is not None:
            etas.append(max(0.0, budget.max_hours * 3600 - self.elapsed()))
        return min(etas) if etas else None


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def line(s: Snapshot) -> str:
    """Returns the one-line summary of a snapshot."""
    budget = f"/{s.budget}" if s.budget else ""
    extra = "".join(f" {k}={v}" for k, v in s.operator.items())
    return (f"gen {s.generation} programs {s.evaluated}{budget} mean-best-iou {s.mean_best:.4f} "
            f"heads>=0.8 {s.heads_above}/{s.n_heads} errors {s.errors} "
            f"elapsed {_clock(s.elapsed)} eta {_clock(s.eta)}{extra}")


class Reporter:
    """Shows snapshots live when `stream` is a terminal, else as plain lines."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._live = None

    def __enter__(self) -> "Reporter":
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=self.stream), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def update(self, s: Snapshot) -> None:
        """Shows the latest snapshot."""
        if self._live is None:
            print(f"[{time.strftime('%H:%M:%S')}] {line(s)}", file=self.stream, flush=True)
            return
        self._live.update(_table(s))

    def message(self, text: str) -> None:
        """Prints a message above the live panel (or as a line)."""
        if self._live is None:
            print(text, file=self.stream, flush=True)
        else:
            self._live.console.print(text, markup=False, highlight=False)


def _table(s: Snapshot):
    from rich.table import Table

    table = Table(title="evo search", show_header=False, box=None)
    budget = f" of {s.budget}" if s.budget else ""
    rows = [
        ("generation", str(s.generation)),
        ("programs", f"{s.evaluated}{budget}"),
        ("mean best-fit IoU", f"{s.mean_best:.4f}"),
        ("heads >= 0.8", f"{s.heads_above} of {s.n_heads}"),
        ("errors", str(s.errors)),
        ("elapsed", _clock(s.elapsed)),
        ("ETA", _clock(s.eta)),
    ] + [(str(k), str(v)) for k, v in s.operator.items()]
    for name, value in rows:
        table.add_row(name, value)
    return table


def snapshot(engine) -> Snapshot:
    """Returns the figures the progress display shows for a search engine."""
    best, b = engine.best, engine.budget
    return Snapshot(
        generation=engine.generation, evaluated=len(engine.archive), budget=b.max_programs,
        mean_best=float(best.mean()), heads_above=int((best >= 0.8).sum()),
        n_heads=engine.archive.n_heads, errors=int((~engine.archive.ok).sum()) + engine.operator_failures,
        elapsed=engine.elapsed(), eta=engine.clock.eta(b, len(engine.archive)), operator=engine.operator.stats())
