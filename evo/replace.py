"""Replacing many heads by their programs: the greedy schedule, two baselines, JSON and plot.

The default schedule takes heads in order of best-fit IoU, replaces each by its best
program, and keeps the replacement unless its marginal cost (relative perplexity
increase over the heads already replaced; for encoders the relative drop in embedding
cosine) exceeds a threshold, until the wanted fraction of all heads is replaced. The
baselines replace, at the same fraction, the same heads by uniform attention, and random
heads by their best programs.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Callable

import numpy as np

from evo import files, perplexity
from evo import run as run_dir
from evo.errors import UserError


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A head and its best program."""

    layer: int
    head: int
    program: str   # program id (file stem)
    source: str
    iou: float


@dataclasses.dataclass(frozen=True)
class Best:
    """Every head's best program, from a run or an export."""

    model: str
    n_layers: int
    n_heads: int
    candidates: list[Candidate]   # heads that have a program, in (layer, head) order
    origin: str                   # the run or export directory


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
    candidates = []
    for h in heads:
        if not h.get("front"):
            continue
        best = max(h["front"], key=lambda e: (e["iou"], -e["length"]))
        file = path / "programs" / f"{best['program']}.py"
        if not file.is_file():
            raise UserError(f"{file} is missing: front.json names program {best['program']} for head "
                            f"{h['layer']}.{h['head']}")
        candidates.append(Candidate(int(h["layer"]), int(h["head"]), best["program"],
                                    file.read_text(encoding="utf-8"), float(best["iou"])))
    n_layers = max(int(h["layer"]) for h in heads) + 1
    n_heads = max(int(h["head"]) for h in heads) + 1
    return Best(model, n_layers, n_heads, candidates, str(path))


def _from_run(path: pathlib.Path) -> Best:
    """Returns the best programs of a run, read from its checkpoint through evo.export."""
    from evo.search import export

    fronts = export.collect(path)
    candidates = []
    for k, (layer, head) in enumerate(fronts.heads):
        if fronts.fronts[k]:
            best = fronts.best(k)
            candidates.append(Candidate(layer, head, best.program, fronts.sources[best.program], best.iou))
    n_layers = max(layer for layer, _ in fronts.heads) + 1
    n_heads = max(head for _, head in fronts.heads) + 1
    return Best(fronts.model, n_layers, n_heads, candidates, str(path))


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


@dataclasses.dataclass
class Step:
    """One head tried by the schedule."""

    candidate: Candidate
    value: float | None      # the measure with this head added (None when its program failed)
    marginal: float | None   # relative cost over the heads replaced before it
    reason: str | None = None  # why it was skipped


def marginal(meter: perplexity.Meter, before: float, after: float) -> float:
    """Returns the relative cost of going from `before` to `after` (perplexity up, or cosine down)."""
    if meter.metric == perplexity.PERPLEXITY:
        return after / before - 1.0
    return 1.0 - after / before


def greedy(meter: perplexity.Meter, candidates: list[Candidate], target: int, threshold: float | None,
           log: Callable[[str], None] = lambda line: None) -> tuple[list[Step], list[Step]]:
    """Returns (replaced, skipped) steps, heads tried in the given order until `target` are replaced."""
    replaced: list[Step] = []
    skipped: list[Step] = []
    current, chosen = meter.baseline, {}
    for c in candidates:
        if len(replaced) >= target:
            break
        try:
            matrices = meter.matrices(c.source)
        except perplexity.ProgramError as err:
            skipped.append(Step(c, None, None, f"program failed: {err}"))
            log(f"skip {c.layer}.{c.head} ({c.program}): program failed: {err}")
            continue
        value = meter.measure({**chosen, (c.layer, c.head): matrices})
        cost = marginal(meter, current, value)
        if threshold is not None and cost > threshold:
            skipped.append(Step(c, value, cost, f"marginal cost {cost:+.1%} over threshold {threshold:.0%}"))
            log(f"skip {c.layer}.{c.head} ({c.program}, IoU {c.iou:.3f}): {cost:+.1%}")
            continue
        chosen[(c.layer, c.head)] = matrices
        current = value
        replaced.append(Step(c, value, cost))
        log(f"{len(replaced)}/{target} {c.layer}.{c.head} ({c.program}, IoU {c.iou:.3f}): "
            f"{meter.metric} {value:.4f} ({marginal(meter, meter.baseline, value):+.1%})")
    return replaced, skipped


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


def run(meter: perplexity.Meter, best: Best, fraction: float | None = None,
        heads: list[tuple[int, int]] | None = None, threshold: float | None = 0.5, seed: int = 0,
        log: Callable[[str], None] = lambda line: None) -> dict:
    """Returns the replacement report (the `--json` document) for the schedule and its baselines."""
    total = best.n_layers * best.n_heads
    if heads is not None:
        by_head = {(c.layer, c.head): c for c in best.candidates}
        missing = [f"{l}.{h}" for l, h in heads if (l, h) not in by_head]
        if missing:
            raise UserError(f"no program for head(s) {', '.join(missing)} in {best.origin}")
        candidates, target, threshold = [by_head[h] for h in heads], len(heads), None
    else:
        if not 0 < fraction <= 1:
            raise UserError(f"--fraction must be in (0, 1], got {fraction}")
        candidates = sorted(best.candidates, key=lambda c: (-c.iou, c.layer, c.head))
        target = max(1, round(fraction * total))
    log(f"{meter.metric} of the unmodified model: {meter.baseline:.4f} on {len(meter.ids)} sentences")
    replaced, skipped = greedy(meter, candidates, target, threshold, log)
    if not replaced:
        raise UserError("no head could be replaced: every program failed or exceeded the threshold")
    chosen = [(s.candidate.layer, s.candidate.head) for s in replaced]
    uniform = uniform_baseline(meter, chosen)
    random_value, random_heads = random_baseline(meter, best.candidates, len(chosen), np.random.default_rng(seed))
    log(f"baselines: uniform {uniform:.4f}, random {random_value:.4f}")
    return _report(meter, best, total, target, threshold, seed, replaced, skipped,
                   {"uniform": uniform, "random": random_value}, random_heads)


def _report(meter, best: Best, total: int, target: int, threshold, seed: int, replaced: list[Step],
            skipped: list[Step], baselines: dict, random_heads: list[Candidate]) -> dict:
    """Returns the JSON-able report."""
    base, final = meter.baseline, replaced[-1].value
    name = "ppl" if meter.metric == perplexity.PERPLEXITY else "cosine"
    change = "increase" if meter.metric == perplexity.PERPLEXITY else "decrease"
    curve = [{"heads": 0, "fraction": 0.0, "value": base}] + [
        {"heads": i + 1, "fraction": (i + 1) / total, "value": s.value, "layer": s.candidate.layer,
         "head": s.candidate.head} for i, s in enumerate(replaced)]
    return {
        "model": best.model, "source": best.origin, "metric": meter.metric,
        "fraction": len(replaced) / total, "target_heads": target, "heads_total": total,
        "threshold": threshold, "seed": seed,
        "sentences": len(meter.ids), "tokens": meter.n_tokens, "max_tokens": meter.settings.max_tokens,
        f"baseline_{name}": base, f"replaced_{name}": final, change: marginal(meter, base, final),
        "replaced": [_entry(s) for s in replaced],
        "skipped": [{**_entry(s), "reason": s.reason} for s in skipped],
        "baselines": baselines,
        "baseline_changes": {k: marginal(meter, base, v) for k, v in baselines.items()},
        "random_heads": [{"layer": c.layer, "head": c.head, "program": c.program} for c in random_heads],
        "curve": curve,
    }


def _entry(step: Step) -> dict:
    """Returns one head's JSON entry."""
    c = step.candidate
    return {"layer": c.layer, "head": c.head, "program": c.program, "iou": round(c.iou, 6),
            "value": step.value, "marginal": step.marginal}


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
    ax.plot(xs, ys, marker="o", markersize=3, label="best programs (greedy by IoU)")
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
