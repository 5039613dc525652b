"""Which heads to replace, by which of their programs, in what order.

`by_cost` (the default, `--schedule cost`): on a selection text that the final figure
does not use, measure each head's candidate programs (best, simplest, the next on its
front by IoU) replacing that head alone; keep per head the cheapest; then add heads
greedily, cheapest first, re-measuring the marginal cost of the front runners over the
heads already replaced (a lazy greedy: a head whose fresh cost is still the lowest known
is taken at once).

`by_iou` (the paper's, `--schedule iou`): heads in order of best-fit IoU, each by its best
program, skipping a head whose marginal cost over the heads already replaced exceeds
the threshold.

`curve` measures a chosen order on the final text, one head at a time. All three run
each trial from the replaced head's layer on (evo.forward), on the hidden states that
the heads already replaced leave entering it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from evo import perplexity

Log = Callable[[str], None]


@dataclasses.dataclass
class Step:
    """One head tried by a schedule, or one point of a curve."""

    candidate: object          # evo.candidates.Candidate
    value: float | None        # the measure with this head added (None when its program failed)
    marginal: float | None     # relative cost over the heads replaced before it
    reason: str | None = None  # why it was skipped
    se: float | None = None    # standard error of `marginal` over sentences


@dataclasses.dataclass(frozen=True)
class Measured:
    """One candidate program's cost replacing its head alone, on the selection text."""

    candidate: object
    cost: float
    se: float


class Accumulator:
    """The heads replaced so far on one meter, and the run they leave (with every layer's inputs)."""

    def __init__(self, meter: perplexity.Meter):
        self.meter = meter
        self.chosen: dict[tuple[int, int], list] = {}
        self.result = meter.reference

    def trial(self, head: tuple[int, int], matrices: list) -> tuple[object, float, float]:
        """Returns (the run with `head` added, its marginal cost, that cost's standard error)."""
        result = self.meter.run({**self.chosen, head: matrices}, start=head[0], inputs=self.result.inputs,
                                record=True)
        cost, se = self.meter.relative(result, self.result)
        return result, cost, se

    def commit(self, head: tuple[int, int], matrices: list, result) -> None:
        """Keeps `head` replaced from now on."""
        self.chosen[head] = matrices
        self.result = result


def measure_alone(meter: perplexity.Meter, best, count: int, log: Log, failed: list[Step] | None = None,
                  known: dict | None = None) -> dict[tuple[int, int], list[Measured]]:
    """Returns, per head, the cost of each of its first `count` candidates replacing it alone.

    Candidates whose program fails on the text are left out, and added to `failed` when given;
    `known[(layer, head, program)] = (cost, se)`, measured before on the same text, is reused.
    """
    out, known = {}, known or {}
    heads = sorted({c.key for c in best.candidates})
    for n, head in enumerate(heads, 1):
        runnable, matrices, entries = [], [], []
        for c in best.choices(head, count):
            if (head[0], head[1], c.program) in known:
                entries.append(Measured(c, *known[(head[0], head[1], c.program)]))
                continue
            try:
                matrices.append(meter.matrices(c.source))
                runnable.append(c)
            except perplexity.ProgramError as err:
                log(f"skip {head[0]}.{head[1]} {c.program}: program failed on the selection text: {err}")
                if failed is not None:
                    failed.append(Step(c, None, None, f"program failed on the selection text: {err}"))
        entries += [Measured(c, cost, se) for c, (cost, se) in zip(runnable, meter.alone(head, matrices))]
        out[head] = entries
        if entries:
            cheapest = min(entries, key=_order)
            log(f"[{n}/{len(heads)}]{' (recorded before)' if not runnable else ''} {head[0]}.{head[1]}: {len(entries)} candidate(s), cheapest "
                f"{cheapest.candidate.program} ({cheapest.candidate.pick}, IoU {cheapest.candidate.iou:.3f}) "
                f"{cheapest.cost:+.2%} ± {cheapest.se:.2%}")
    return out


def _order(m: Measured) -> tuple:
    return (m.cost, -m.candidate.iou, m.candidate.program)


def by_cost(meter: perplexity.Meter, measured: dict[tuple[int, int], list[Measured]], target: int,
            recheck: int, threshold: float | None, log: Log) -> list[Step]:
    """Returns the heads taken, in order, each by its cheapest candidate, greedily on `meter`."""
    pending = {head: min(entries, key=_order) for head, entries in measured.items() if entries}
    known = {head: m.cost for head, m in pending.items()}
    acc, steps = Accumulator(meter), []
    while len(steps) < target and pending:
        ranked = sorted(pending, key=lambda h: (known[h], h))
        pick = None
        for i, head in enumerate(ranked[: max(1, recheck)]):
            matrices = meter.matrices(pending[head].candidate.source)
            result, cost, se = acc.trial(head, matrices)
            known[head] = cost
            if pick is None or cost < pick[2]:
                pick = (head, result, cost, se, matrices)
            rest = [known[h] for h in ranked[i + 1 :]]
            if not rest or pick[2] <= min(rest):
                break
        head, result, cost, se, matrices = pick
        if threshold is not None and cost > threshold:
            log(f"stop: the cheapest remaining head {head[0]}.{head[1]} costs {cost:+.1%}, over {threshold:.0%}")
            break
        acc.commit(head, matrices, result)
        c = pending.pop(head).candidate
        steps.append(Step(c, meter.value(result), cost, se=se))
        log(f"{len(steps)}/{target} {head[0]}.{head[1]} ({c.program}, IoU {c.iou:.3f}): marginal "
            f"{cost:+.2%} ± {se:.2%}, {meter.metric} {meter.value(result):.4f} on the selection text")
    return steps


def by_iou(meter: perplexity.Meter, candidates: list, target: int, threshold: float | None,
           log: Log) -> tuple[list[Step], list[Step]]:
    """Returns (replaced, skipped): heads tried in the given order until `target` are replaced."""
    replaced: list[Step] = []
    skipped: list[Step] = []
    acc = Accumulator(meter)
    for c in candidates:
        if len(replaced) >= target:
            break
        try:
            matrices = meter.matrices(c.source)
        except perplexity.ProgramError as err:
            skipped.append(Step(c, None, None, f"program failed: {err}"))
            log(f"skip {c.layer}.{c.head} ({c.program}): program failed: {err}")
            continue
        result, cost, se = acc.trial(c.key, matrices)
        value = meter.value(result)
        if threshold is not None and cost > threshold:
            skipped.append(Step(c, value, cost, f"marginal cost {cost:+.1%} over threshold {threshold:.0%}", se))
            log(f"skip {c.layer}.{c.head} ({c.program}, IoU {c.iou:.3f}): {cost:+.1%}")
            continue
        acc.commit(c.key, matrices, result)
        replaced.append(Step(c, value, cost, se=se))
        log(f"{len(replaced)}/{target} {c.layer}.{c.head} ({c.program}, IoU {c.iou:.3f}): "
            f"{meter.metric} {value:.4f} ({meter.cost(value):+.1%})")
    return replaced, skipped


def curve(meter: perplexity.Meter, candidates: list, log: Log) -> tuple[list[Step], list[Step]]:
    """Returns (points, skipped): `candidates` added one at a time, measured on `meter`'s text."""
    acc, points, skipped = Accumulator(meter), [], []
    for c in candidates:
        try:
            matrices = meter.matrices(c.source)
        except perplexity.ProgramError as err:
            skipped.append(Step(c, None, None, f"program failed on the final text: {err}"))
            continue
        result, cost, se = acc.trial(c.key, matrices)
        acc.commit(c.key, matrices, result)
        points.append(Step(c, meter.value(result), cost, se=se))
        log(f"curve {len(points)}/{len(candidates)} {c.layer}.{c.head}: {meter.metric} "
            f"{meter.value(result):.4f} ({meter.cost(meter.value(result)):+.2%})")
    return points, skipped
