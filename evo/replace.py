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
from evo import run as run_dir
from evo.errors import UserError


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A head and one of its programs."""

    layer: int
    head: int
    program: str   # program id (file stem)
    source: str
    iou: float
    length: int = 0
    pick: str = ""  # "best", "simplest" or "front": why it is a candidate for its head

    @property
    def key(self) -> tuple[int, int]:
        return (self.layer, self.head)


@dataclasses.dataclass(frozen=True)
class Best:
    """Every head's best program, from a run or an export."""

    model: str
    n_layers: int
    n_heads: int
    candidates: list[Candidate]   # heads that have a program, in (layer, head) order
    origin: str                   # the run or export directory
    options: dict[tuple[int, int], list[Candidate]] = dataclasses.field(default_factory=dict)
    # per head: its best and simplest programs, then the rest of its front by IoU

    def choices(self, head: tuple[int, int], count: int) -> list[Candidate]:
        """Returns up to `count` distinct candidates for `head` (best first)."""
        return self.options.get(head, [c for c in self.candidates if c.key == head])[:count]


def load_best(path: str | pathlib.Path) -> Best:
    """Returns the best program per head from an export dir (front.json) or a run dir (its checkpoint)."""
    path = pathlib.Path(path)
    if (path / "front.json").is_file():
        return _from_export(path)
    if run_dir.is_run(path):
        return _from_run(path)
    raise UserError(f"{path} is neither an export (front.json + programs/) nor a run directory (config.json)")


def _from_export(path: pathlib.Path) -> Best:
    """Returns the best programs of an export directory."""
    try:
        doc = json.loads((path / "front.json").read_text(encoding="utf-8"))
        heads = doc["heads"]
        model = doc["model"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path / 'front.json'} is not a readable export front ({err})") from err
    candidates, options = [], {}
    for h in heads:
        if not h.get("front"):
            continue
        layer, head = int(h["layer"]), int(h["head"])
        best = max(h["front"], key=lambda e: (e["iou"], -e["length"]))
        simplest = h.get("simplest") or best
        ordered = [(best, "best"), (simplest, "simplest")] + [
            (e, "front") for e in sorted(h["front"], key=lambda e: (-e["iou"], e["length"]))]
        seen, mine = set(), []
        for e, pick in ordered:
            if e["program"] in seen:
                continue
            seen.add(e["program"])
            file = path / "programs" / f"{e['program']}.py"
            if not file.is_file():
                raise UserError(f"{file} is missing: front.json names program {e['program']} for head "
                                f"{layer}.{head}")
            mine.append(Candidate(layer, head, e["program"], file.read_text(encoding="utf-8"), float(e["iou"]),
                                  int(e.get("length", 0)), pick))
        candidates.append(mine[0])
        options[(layer, head)] = mine
    n_layers = max(int(h["layer"]) for h in heads) + 1
    n_heads = max(int(h["head"]) for h in heads) + 1
    return Best(model, n_layers, n_heads, candidates, str(path), options)


def _from_run(path: pathlib.Path) -> Best:
    """Returns the best programs of a run, read from its checkpoint through evo.export."""
    from evo.search import export

    fronts = export.collect(path)
    candidates, options = [], {}
    for k, (layer, head) in enumerate(fronts.heads):
        if not fronts.fronts[k]:
            continue
        ordered = [(fronts.best(k), "best"), (fronts.simplest(k), "simplest")] + [
            (e, "front") for e in sorted(fronts.fronts[k], key=lambda e: (-e.iou, e.length))]
        seen, mine = set(), []
        for e, pick in ordered:
            if e.program not in seen:
                seen.add(e.program)
                mine.append(Candidate(layer, head, e.program, fronts.sources[e.program], e.iou, e.length, pick))
        candidates.append(mine[0])
        options[(layer, head)] = mine
    n_layers = max(layer for layer, _ in fronts.heads) + 1
    n_heads = max(head for _, head in fronts.heads) + 1
    return Best(fronts.model, n_layers, n_heads, candidates, str(path), options)


def parse_heads(text: str) -> list[tuple[int, int]]:
    """Returns [(layer, head), ...] from "3.1,5.0"."""
    heads = []
    for part in text.split(","):
        layer, dot, head = part.strip().partition(".")
        if not (dot and layer.isdigit() and head.isdigit()):
            raise UserError(f"--heads takes LAYER.HEAD pairs separated by commas (e.g. 3.1,5.0), got {part!r}")
        heads.append((int(layer), int(head)))
    if len(set(heads)) != len(heads):
        raise UserError(f"--heads names a head twice: {text}")
    return heads


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
    measured: dict = {}
    if heads is not None:
        by_head = {(c.layer, c.head): c for c in best.candidates}
        missing = [f"{l}.{h}" for l, h in heads if (l, h) not in by_head]
        if missing:
            raise UserError(f"no program for head(s) {', '.join(missing)} in {best.origin}")
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
            select = select or meter
            log(f"cost schedule: measuring up to {plan.candidates} programs per head alone on "
                f"{len(select.ids)} selection sentences")
            failed: list = []
            measured = schedule.measure_alone(select, best, plan.candidates, log, failed, plan.known)
            order = schedule.by_cost(select, measured, target, plan.recheck, plan.threshold, log)
            replaced, skipped = schedule.curve(meter, [s.candidate for s in order], log)
            skipped = failed + skipped
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
        report["selection"] = {"sentences": len(select.ids), "tokens": select.n_tokens,
                               "baseline": select.baseline, "fingerprint": select.fingerprint}
    return report


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


def plot(report: dict, path: str | pathlib.Path) -> None:
    """Draws the measure against the fraction of heads replaced, with both baselines, into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    fig, ax = pyplot.subplots(figsize=(6.4, 4.2))
    xs = [p["fraction"] * 100 for p in report["curve"]]
    ys = [p["value"] for p in report["curve"]]
    label = {"cost": "cheapest programs (cost schedule)", "iou": "best programs (greedy by IoU)"}.get(
        report.get("schedule"), "the given heads")
    ax.plot(xs, ys, marker="o", markersize=3, label=label)
    x = report["fraction"] * 100
    ax.scatter([x], [report["baselines"]["uniform"]], marker="s", color="tab:red", label="same heads, uniform")
    ax.scatter([x], [report["baselines"]["random"]], marker="^", color="tab:green", label="random heads, programs")
    ax.axhline(ys[0], color="grey", linewidth=0.8, linestyle="--", label="unmodified model")
    ax.set_xlabel("heads replaced (% of all heads)")
    ax.set_ylabel("perplexity" if report["metric"] == perplexity.PERPLEXITY else "embedding cosine to original")
    ax.set_title(f"{report['model']}: {len(report['replaced'])} of {report['heads_total']} heads replaced")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with files.atomic(pathlib.Path(path), "wb") as f:
        fig.savefig(f, dpi=120, format=pathlib.Path(path).suffix.lstrip(".") or "png")
    pyplot.close(fig)
