"""What the report shows, gathered from a run or an export into plain data.

For every head: its picks and front (evo.results), the classic detector scores, and the
three sentences where its readable program fits best, at the median and worst, with both
matrices. For the overview: the run log's curve of mean best-fit IoU against programs
evaluated, which operators made the improvements, and the LLM ledger when there was one.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from evo import evaluate, fitness, results, run
from evo.errors import UserError
from evo.report import detectors

THRESHOLDS = (0.5, 0.7, 0.8, 0.9)


@dataclasses.dataclass
class Example:
    """One sentence of one head: tokens, the head's attention, the program's, and their IoU."""

    kind: str            # "best", "median" or "worst"
    sentence: int
    tokens: list[str]
    head: np.ndarray     # (n, n)
    program: np.ndarray  # (n, n)
    iou: float


@dataclasses.dataclass
class Head:
    k: int
    label: str
    layer: int
    head: int
    best: object         # evo.search.picks.Entry: the best fit
    readable: object     # the readable pick, which the page leads with
    front: list
    detectors: dict      # name -> score (None where the pattern never applied)
    examples: list[Example]
    family: str = "mixed"
    told: object = None  # evo.explanation.measure.Explained

def progress(run_dir: pathlib.Path, n_heads: int) -> dict:
    """Returns the run log's curve (programs evaluated -> mean best IoU) and improvements per operator."""
    log = run_dir / run.LOG
    if not log.is_file():
        raise UserError(f"{run_dir} has no run log ({log.name}); the report needs it for the search curve")
    best = np.zeros(n_heads)
    xs, ys, made = [], [], {}
    from evo.search import archive
    with open(log, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{log} line {n} is not valid JSON; the log is damaged") from None
            if entry.get("iou_f16"):
                iou = archive.decode(entry["iou_f16"], np.float16).astype(np.float64)
                if len(iou) != n_heads:
                    raise UserError(f"{log} line {n} scores {len(iou)} heads, the run has {n_heads}")
                gained = int((iou > best + 1e-6).sum()) if entry.get("generation", 0) > 0 else 0
                if gained:
                    op = str(entry.get("operator", "?"))
                    made[op] = made.get(op, 0) + gained
                best = np.maximum(best, iou)
            xs.append(n)
            ys.append(float(best.mean()))
    return {"programs": xs, "mean_best": ys, "improvements": dict(sorted(made.items(), key=lambda kv: -kv[1]))}


def llm_ledger(run_dir: pathlib.Path) -> dict | None:
    """Returns the LLM token and cost counters from a run's checkpoint, or None when no LLM ran."""
    try:
        state = json.loads((run_dir / run.CHECKPOINT).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    found = _find_counters(state.get("operator"))
    if not found or not (found.get("calls") or found.get("prompt_tokens")):
        return None
    return found


def _find_counters(node):
    if isinstance(node, dict):
        if isinstance(node.get("counters"), dict) and "prompt_tokens" in node["counters"]:
            return node["counters"]
        for v in node.values():
            hit = _find_counters(v)
            if hit:
                return hit
    return None


def heads(res: results.Results, limits=None) -> list[Head]:
    """Returns every head with its detector scores and its best, median and worst sentences."""
    from evo import attention_set
    if res.aset_path is None or not (res.aset_path / "meta.json").is_file():
        raise UserError(f"the attention set of {res.source} is not on this machine "
                        f"({res.aset_path or 'no path recorded'}); recapture it with `evo capture`")
    aset = attention_set.AttentionSet.load(res.aset_path)
    if aset.n_layers * aset.n_heads != len(res.heads):
        raise UserError(f"the attention set at {res.aset_path} has {aset.n_layers * aset.n_heads} heads, "
                        f"{res.source} has {len(res.heads)}")
    picks = [res.readable(k) for k in range(len(res.heads))]
    tokens = [list(t) for t in aset.tokens]
    outputs = {}
    for pid in sorted({p.program for p in picks}):
        outs, error = evaluate.outputs(res.sources[pid], tokens, res.causal,
                                       **({"limits": limits} if limits else {}))
        if outs is None:
            raise UserError(f"program {pid} no longer runs on its attention set: {error}")
        outputs[pid] = [o.astype(np.float32) for o in outs]
    per_sentence = np.zeros((len(res.heads), len(aset)))
    scores = detectors.Scores(len(res.heads))
    for s in range(len(aset)):
        mats = aset.matrices(s).astype(np.float64)
        scores.add(tokens[s], mats)
        for k, p in enumerate(picks):
            per_sentence[k, s] = fitness.iou_rows(mats[k], outputs[p.program][s]).mean()
    found = scores.result()
    out = []
    for k, p in enumerate(picks):
        chosen = _examples(per_sentence[k], [len(t) for t in tokens])
        examples = []
        for kind, s in chosen:
            mats = aset.matrices(s)
            examples.append(Example(kind, s, tokens[s], mats[k].astype(np.float32), outputs[p.program][s],
                                    float(per_sentence[k, s])))
        layer, head = res.heads[k]
        out.append(Head(k, res.label(k), layer, head, res.best(k), p, res.fronts[k],
                        {name: (None if np.isnan(found[d, k]) else float(found[d, k]))
                         for d, name in enumerate(detectors.NAMES)}, examples, res.told(k).family, res.told(k)))
    return out


def _examples(ious: np.ndarray, lengths: list[int]) -> list[tuple[str, int]]:
    """Returns (kind, sentence) for the best, median and worst sentence (of 4 tokens or more when any)."""
    pool = [s for s, n in enumerate(lengths) if n >= 4] or list(range(len(lengths)))
    order = sorted(pool, key=lambda s: (-ious[s], s))
    return [("best", order[0]), ("median", order[len(order) // 2]), ("worst", order[-1])]


def overview(res: results.Results, hs: list[Head]) -> dict:
    """Returns the overview figures: model, corpus, budget, thresholds, means."""
    best = np.array([h.best.iou for h in hs])
    simplest = np.array([h.readable.iou for h in hs])
    by_family: dict[str, list[float]] = {}
    for h in hs:
        by_family.setdefault(h.family, []).append(h.readable.iou)
    info = res.info
    aset = info.get("attention_set") or {}
    corpus = aset.get("corpus") or {}
    return {
        "model": res.model, "kind": res.kind, "source": str(res.source),
        "corpus": (corpus.get("source") if isinstance(corpus, dict) else corpus) or info.get("corpus")
        or f"builtin:{info.get('split')}",
        "sentences": aset.get("sentences"), "programs": info.get("programs_evaluated"),
        "generation": info.get("generation"), "n_heads": len(hs),
        "layers": max(h.layer for h in hs) + 1, "per_layer": max(h.head for h in hs) + 1,
        "mean_best": float(best.mean()), "mean_simplest": float(simplest.mean()),
        "median_best_length": float(np.median([h.best.length for h in hs])),
        "median_simplest_length": float(np.median([h.readable.length for h in hs])),
        "readable_nodes": res.readable_nodes,
        "families": [(name, len(v), float(np.mean(v))) for name, v in sorted(by_family.items(), key=lambda kv: -len(kv[1]))],
        "above": [(t, int((best >= t).sum())) for t in THRESHOLDS],
        "distinct": len({h.best.program for h in hs}),
    }
