"""When a search stops, and how many requests the next generation may make."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Budget:
    """When to stop; None means unbounded. The first one reached wins."""

    max_programs: int | None = 500  # unique programs evaluated, seeds included
    generations: int | None = None  # generations bred after the seeds
    max_hours: float | None = None  # wall-clock over all sessions of the run


def stop_reason(budget: Budget, evaluated: int, generation: int, elapsed: float, stall: int,
                stall_limit: int) -> str | None:
    """Returns why the search must stop now (a budget reached, or no new programs for too long), or None."""
    if budget.max_programs is not None and evaluated >= budget.max_programs:
        return f"reached --max-programs {budget.max_programs} ({evaluated} programs evaluated)"
    if budget.generations is not None and generation >= budget.generations:
        return f"reached --generations {budget.generations}"
    if budget.max_hours is not None and elapsed >= budget.max_hours * 3600:
        return f"reached --max-hours {budget.max_hours:g}"
    if stall >= stall_limit:
        return f"the operators produced no new program in {stall} generations"
    return None


def batch(budget: Budget, batch_size: int, evaluated: int) -> int:
    """Returns the requests the next generation makes: the batch size, or what the program budget has left."""
    if budget.max_programs is not None:
        return min(batch_size, budget.max_programs - evaluated)
    return batch_size
