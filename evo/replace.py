"""Replacing many heads by their programs: schedules (evo.schedule), two baselines, JSON and plot.

The default schedule (`cost`) picks per head its cheapest program on a selection text and
adds heads cheapest first, re-measuring as they accumulate; `iou` (the paper's) takes heads
in order of best-fit IoU by their best programs, skipping a head whose marginal cost
(relative perplexity increase over the heads already replaced; for encoders the relative
drop in embedding cosine) exceeds a threshold. Either way the curve is then measured on
the final text up to the wanted fraction of all heads. The baselines replace, at that
fraction, the same heads by uniform attention, and random heads by their programs.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Callable

import numpy as np

from evo import files, perplexity, schedule
from evo.candidates import Best, Candidate
from evo.errors import UserError


def marginal(meter: perplexity.Meter, before: float, after: float) -> float:
    """Returns the relative cost of going from `before` to `after` (perplexity up, or cosine down)."""
    if meter.metric == perplexity.PERPLEXITY:
        return after / before - 1.0
    return 1.0 - after / before


def uniform_baseline(meter: perplexity.Meter, heads: list[tuple[int, int]]) -> float:
    """Returns the measure with `heads` replaced by uniform (causal for decoders) attention."""
    uniform = meter.uniform_matrices()
    return meter.measure({h: uniform for h in heads})


def random_baseline(meter: perplexity.Meter, candidates: list[Candidate], count: int,
                    rng: np.random.Generator) -> tuple[float, list[Candidate]]:
    """Returns the measure with `count` random heads replaced by their best programs, and those heads."""
    order = [candidates[i] for i in rng.permutation(len(candidates))]
    chosen, picked = {}, []
    for c in order:
        if len(picked) >= count:
            break
        try:
            chosen[(c.layer, c.head)] = meter.matrices(c.source)
        except perplexity.ProgramError:
            continue
        picked.append(c)
    return meter.measure(chosen), picked


SCHEDULES = ("cost", "iou")


@dataclasses.dataclass(frozen=True)
class Plan:
    """How `run` chooses heads: the schedule and its knobs."""

    schedule: str = "cost"            # "cost" (cheapest first, measured) or "iou" (the paper's)
    threshold: float | None = 0.5     # skip (iou) or stop at (cost) a head whose marginal cost exceeds this
    candidates: int = 3               # programs measured per head by the cost schedule
    recheck: int = 3                  # front runners re-measured per step by the cost schedule
    known: dict | None = None         # costs measured before on the selection text (evo.costs.measured_on)
    seed: int = 0                     # for the random-heads baseline


def run(meter: perplexity.Meter, best: Best, fraction: float | None = None,
        heads: list[tuple[int, int]] | None = None, plan: Plan = Plan(), select: perplexity.Meter | None = None,
        log: Callable[[str], None] = lambda line: None) -> dict:
    """Returns the replacement report (the `--json` document) for the schedule and its baselines.

    `select` is the meter on the selection text the cost schedule measures on (not `meter`'s).
    """
    total = best.n_layers * best.n_heads
    log(f"{meter.metric} of the unmodified model: {meter.baseline:.4f} on {len(meter.ids)} sentences")
    target, schedule_name, replaced, skipped, measured = _schedule(meter, best, total, fraction, heads, plan,
                                                                   select or meter, log)
    if not replaced:
        raise UserError("no head could be replaced: every program failed or exceeded the threshold")
    chosen = [s.candidate for s in replaced]
    uniform = uniform_baseline(meter, [c.key for c in chosen])
    picked = {c.key: c for c in best.candidates} | {c.key: c for c in chosen}
    random_value, random_heads = random_baseline(meter, sorted(picked.values(), key=lambda c: c.key), len(chosen),
                                                 np.random.default_rng(plan.seed))
    log(f"baselines: uniform {uniform:.4f}, random {random_value:.4f}")
    report = _report(meter, best, total, target, plan, replaced, skipped,
                     {"uniform": uniform, "random": random_value}, random_heads)
    report["schedule"] = schedule_name
    report["candidates"] = _measured(measured, {c.key: c.program for c in chosen})
    if measured:
        select = select or meter
        report["selection"] = {"sentences": len(select.ids), "tokens": select.n_tokens,
                               "baseline": select.baseline, "fingerprint": select.fingerprint}
    return report


def _schedule(meter, best: Best, total: int, fraction, heads, plan: Plan, select, log):
    """Returns (target, schedule name, replaced steps, skipped steps, the cost schedule's measurements)."""
    measured: dict = {}
    if heads is not None:
        best.require(heads)
        by_head = {c.key: c for c in best.candidates}
        target, schedule_name = len(heads), "heads"
        replaced, skipped = schedule.curve(meter, [by_head[h] for h in heads], log)
    else:
        if not 0 < fraction <= 1:
            raise UserError(f"--fraction must be in (0, 1], got {fraction}")
        target, schedule_name = max(1, round(fraction * total)), plan.schedule
        if plan.schedule == "iou":
            candidates = sorted(best.candidates, key=lambda c: (-c.iou, c.layer, c.head))
            replaced, skipped = schedule.by_iou(meter, candidates, target, plan.threshold, log)
        else:
            log(f"cost schedule: measuring up to {plan.candidates} programs per head alone on "
                f"{len(select.ids)} selection sentences")
            failed: list = []
            measured = schedule.measure_alone(select, best, plan.candidates, log, failed, plan.known)
            order = schedule.by_cost(select, measured, target, plan.recheck, plan.threshold, log)
            replaced, skipped = schedule.curve(meter, [s.candidate for s in order], log)
            skipped = failed + skipped
    return target, schedule_name, replaced, skipped, measured


def complete(doc: dict) -> dict:
    """Returns a replace report with the fields derived from its contract keys filled in where missing.

    Older reports (and hand-made ones) carry only model, curve, baselines and replaced.
    """
    doc = dict(doc)
    ppl = doc.setdefault("metric", perplexity.PERPLEXITY) == perplexity.PERPLEXITY
    base, final = doc["curve"][0]["value"], doc["curve"][-1]["value"]

    def change(value: float) -> float:
        return value / base - 1.0 if ppl else 1.0 - value / base

    doc.setdefault("baseline_changes", {k: change(v) for k, v in doc["baselines"].items()})
    doc.setdefault("increase" if ppl else "decrease", change(final))
    doc.setdefault("heads_total", max(1, round(len(doc["replaced"]) / max(doc.get("fraction") or 1.0, 1e-9))))
    doc.setdefault("fraction", len(doc["replaced"]) / doc["heads_total"])
    doc.setdefault("sentences", "?")
    doc.setdefault("tokens", "?")
    return doc


def _measured(measured: dict, chosen: dict) -> list[dict]:
    """Returns the cost schedule's per-head measurements as JSON entries."""
    out = []
    for (layer, head), entries in sorted(measured.items()):
        for m in entries:
            c = m.candidate
            out.append({"layer": layer, "head": head, "program": c.program, "pick": c.pick, "iou": round(c.iou, 6),
                        "length": c.length, "cost": m.cost, "cost_se": m.se,
                        "chosen": chosen.get((layer, head)) == c.program})
    return out


def _report(meter, best: Best, total: int, target: int, plan: Plan, replaced: list, skipped: list,
            baselines: dict, random_heads: list[Candidate]) -> dict:
    """Returns the JSON-able report."""
    base, final = meter.baseline, replaced[-1].value
    name = "ppl" if meter.metric == perplexity.PERPLEXITY else "cosine"
    change = "increase" if meter.metric == perplexity.PERPLEXITY else "decrease"
    curve = [{"heads": 0, "fraction": 0.0, "value": base}] + [
        {"heads": i + 1, "fraction": (i + 1) / total, "value": s.value, "layer": s.candidate.layer,
         "head": s.candidate.head, "program": s.candidate.program} for i, s in enumerate(replaced)]
    return {
        "model": best.model, "source": best.origin, "metric": meter.metric,
        "fraction": len(replaced) / total, "target_heads": target, "heads_total": total,
        "threshold": plan.threshold, "seed": plan.seed,
        "sentences": len(meter.ids), "tokens": meter.n_tokens, "max_tokens": meter.settings.max_tokens,
        f"baseline_{name}": base, f"replaced_{name}": final, change: marginal(meter, base, final),
        "replaced": [_entry(s) for s in replaced],
        "skipped": [{**_entry(s), "reason": s.reason} for s in skipped],
        "baselines": baselines,
        "baseline_changes": {k: marginal(meter, base, v) for k, v in baselines.items()},
        "random_heads": [{"layer": c.layer, "head": c.head, "program": c.program} for c in random_heads],
        "curve": curve,
    }


def _entry(step) -> dict:
    """Returns one head's JSON entry."""
    c = step.candidate
    return {"layer": c.layer, "head": c.head, "program": c.program, "pick": c.pick, "iou": round(c.iou, 6),
            "value": step.value, "marginal": step.marginal, "marginal_se": step.se}


def write_json(report: dict, path: str | pathlib.Path) -> None:
    """Writes the report as indented JSON."""
    files.write_text(pathlib.Path(path), json.dumps(report, indent=2) + "\n")


_LABELS = {"cost": "cost schedule (cheapest programs)", "iou": "iou schedule (paper's: best programs by IoU)"}


def plot(report: dict, path: str | pathlib.Path, others: list[dict] = ()) -> None:
    """Draws the relative cost against the fraction of heads replaced (and `others`' curves), with baselines.

    A baseline far above the curves is drawn at the top edge with its value written beside it.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    ppl = report["metric"] == perplexity.PERPLEXITY
    fig, ax = pyplot.subplots(figsize=(6.4, 4.2))
    top = 0.0
    for r in [report, *others]:
        base = r["curve"][0]["value"]
        xs = [p["fraction"] * 100 for p in r["curve"]]
        ys = [100 * (p["value"] / base - 1 if ppl else 1 - p["value"] / base) for p in r["curve"]]
        top = max(top, max(ys))
        ax.plot(xs, ys, marker="o", markersize=3, label=_LABELS.get(r.get("schedule"), "the given heads"))
    ceiling = max(top * 1.6, 1.0)
    x = report["fraction"] * 100
    for name, marker, colour, label, dx in (("uniform", "s", "tab:red", "same heads, uniform", -0.4),
                                            ("random", "^", "tab:green", "random heads, programs", 0.4)):
        value = 100 * report["baseline_changes"][name]
        shown = min(value, ceiling * 0.97)
        ax.scatter([x + dx], [shown], marker=marker, color=colour, zorder=3,
                   label=f"{label} ({value:+.1f} %)" + (", off the scale" if value > shown else ""))
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--", label="unmodified model")
    ax.set_ylim(min(-1.0, ax.get_ylim()[0]), ceiling)
    ax.set_xlabel("heads replaced (% of all heads)")
    ax.set_ylabel("perplexity increase (%)" if ppl else "embedding cosine decrease (%)")
    ax.set_title(f"{report['model']}: up to {len(report['replaced'])} of {report['heads_total']} heads replaced "
                 f"({report['sentences']} sentences)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    with files.atomic(pathlib.Path(path), "wb") as f:
        fig.savefig(f, dpi=120, format=pathlib.Path(path).suffix.lstrip(".") or "png")
    pyplot.close(fig)
