"""The paper's results table, reproduced as headcode measures it, beside the paper's own rows.

    python bench/paper_table.py [--model NAME ...] [--run-dir RUN ...] [--corpus bench/data/prose.txt]
                                [--programs 500] [--workers 2] [--json docs/results.json]
                                [--markdown docs/results.md]

One row per model: gemma-3-270m and smollm2-135m, plus any `--model`. A model's run is the
`--run-dir` whose config names that model, else runs/paper-<model>, searched here when it
does not exist (`evo search --max-programs PROGRAMS`). Every later step keeps its result in
RUN/paper/ and is skipped when that file is there, so the table is rerun without searching
or measuring again (`--redo` measures again):

    export          evo export RUN --out RUN/paper/front
    held-out IoU    each head's best fit and readable pick scored against that head on --corpus
                    (or the validation split), as the paper scores its programs
    perplexity      evo replace RUN --fraction 0.5 --corpus TEXT (cost-aware schedule, 2 candidates a head
                    measured on 32 selection sentences, so that a 270-head model takes minutes, not hours):
                    the curve at 25 % and 50 % of heads
    question        evo replace RUN --fraction 0.25 --task builtin: multiple-choice accuracy
    answering       before and after 25 % of heads are replaced

The paper's figures (Hayes, Li & Andreas) are its headline table, recomputed from its
released results: mean best-fit IoU, perplexity rise with 25 % of heads replaced.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import readable  # noqa: E402  (bench/readable.py)

from evo import files, run  # noqa: E402

DEFAULT_MODELS = ("gemma-3-270m", "smollm2-135m")
PAPER = [   # model, heads, mean best-fit IoU, perplexity rise at 25 % of heads
    {"model": "GPT-2 (paper)", "heads": 144, "iou": 0.700, "ppl25": 0.121},
    {"model": "TinyLlama-1.1B (paper)", "heads": 704, "iou": 0.760, "ppl25": 0.165},
    {"model": "Llama-3.2-3B (paper)", "heads": 672, "iou": 0.735, "ppl25": 0.195},
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], help="another model to add a row for (repeatable)")
    p.add_argument("--run-dir", action="append", default=[], help="a run to reuse; its config names its model")
    p.add_argument("--corpus", default="bench/data/prose.txt", help="held-out text (default: bench/data/prose.txt)")
    p.add_argument("--programs", type=int, default=500, help="programs a new search evaluates (default: 500)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    p.add_argument("--task-items", type=int, default=None, help="score only the first N task items")
    p.add_argument("--candidates", type=int, default=2, help="programs per head the cost schedule measures "
                                                               "(evo replace --candidates; default: 2)")
    p.add_argument("--select-sentences", type=int, default=32, help="selection sentences the cost schedule "
                                                                      "measures on (default: 32)")
    p.add_argument("--recheck", type=int, default=1, help="front runners re-measured per step (default: 1)")
    p.add_argument("--half", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure the curve to 50 %% of heads (--no-half: 25 %% only, from the task run)")
    p.add_argument("--redo", action="store_true", help="measure again even where RUN/paper/ holds a result")
    p.add_argument("--only", action="append", default=[], help="measure only these models (rows of the others "
                                                                "are read from --json when there)")
    p.add_argument("--json", default="docs/results.json", help="where to write the table as JSON")
    p.add_argument("--markdown", default="docs/results.md", help="page whose table block is rewritten")
    args = p.parse_args(argv)
    models = list(dict.fromkeys([*DEFAULT_MODELS, *args.model]))
    runs = {_run_model(pathlib.Path(r)): pathlib.Path(r) for r in args.run_dir}
    old = {row["model"]: row for row in _read(args.json).get("rows", [])}
    rows = []
    for model in models:
        if args.only and model not in args.only:
            if model in old:
                rows.append(old[model])
            continue
        run_dir = runs.get(model) or pathlib.Path("runs") / f"paper-{re.sub(r'[^A-Za-z0-9._-]+', '-', model)}"
        rows.append(measure(model, run_dir, args))
        print(line(rows[-1]), flush=True)
    doc = {"corpus": args.corpus, "paper": PAPER, "rows": rows}
    files.write_text(pathlib.Path(args.json), json.dumps(doc, indent=1) + "\n")
    _rewrite(pathlib.Path(args.markdown), markdown(doc))
    print(markdown(doc))
    return 0


def measure(model: str, run_dir: pathlib.Path, args) -> dict:
    """Returns one model's row, computing only what RUN/paper/ does not hold yet."""
    if not (run_dir / run.CHECKPOINT).is_file():
        _evo("search", "--model", model, "--max-programs", str(args.programs), "--workers", str(args.workers),
             "--run-dir", str(run_dir))
    paper = run_dir / "paper"
    paper.mkdir(exist_ok=True)
    front = paper / "front"
    if args.redo or not (front / "front.json").is_file():
        _evo("export", str(run_dir), "--out", str(front))
    held = _cached(paper / "heldout.json", args.redo,
                   lambda: readable.measure(front, args.corpus, "validation", args.workers))
    curve = _cached(paper / "replace50.json", args.redo, lambda: _replace(
        run_dir, paper / "replace50.json", args, "--fraction", "0.5", "--corpus", args.corpus)) if args.half else None
    task_flags = ["--task-items", str(args.task_items)] if args.task_items else []
    task = _cached(paper / "replace25-task.json", args.redo, lambda: _replace(
        run_dir, paper / "replace25-task.json", args, "--fraction", "0.25", "--corpus", args.corpus,
        "--task", "builtin", *task_flags))
    doc = json.loads((front / "front.json").read_text())
    best_search = [h["best"]["iou"] for h in doc["heads"]]
    return {
        "model": model, "run": str(run_dir), "heads": len(doc["heads"]), "programs": _programs(run_dir),
        "iou_search": round(sum(best_search) / len(best_search), 4),
        "iou_heldout": held["best"]["mean_iou"], "heads_08_heldout": held["best"]["at_least_0.8"],
        "readable_iou_heldout": held["readable"]["mean_iou"], "readable_median_length": held["readable"]["median_length"],
        "best_median_length": held["best"]["median_length"],
        "ppl25": _at(curve or task, 0.25), "ppl50": _at(curve, 0.5) if curve else None,
        "ppl_text": (curve or task).get("sentences"),
        "task_before": task["task"]["unmodified"]["acc"], "task_after25": task["task"]["replaced"]["acc"],
        "task_uniform25": task["task"]["uniform"]["acc"], "task_items": task["task"]["unmodified"]["items"],
    }


def _run_model(run_dir: pathlib.Path) -> str:
    """Returns the model a run was made with (from its config)."""
    return json.loads((run_dir / run.CONFIG).read_text())["model"]


def _programs(run_dir: pathlib.Path) -> int:
    """Returns how many programs the run has evaluated (its log's records)."""
    with open(run_dir / run.LOG, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _cached(path: pathlib.Path, redo: bool, compute) -> dict:
    """Returns the JSON at path, computing and writing it first when absent (or with --redo)."""
    if redo or not path.is_file():
        start = time.perf_counter()
        result = compute()
        if result is not None:
            files.write_text(path, json.dumps(result, indent=1) + "\n")
        print(f"  {path.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return json.loads(path.read_text())


def _replace(run_dir: pathlib.Path, out: pathlib.Path, args, *flags: str) -> None:
    """Runs `evo replace` on the run (the cost schedule, as lean as the flags say), writing its report to out."""
    _evo("replace", str(run_dir), "--json", str(out), "--candidates", str(args.candidates),
         "--select-sentences", str(args.select_sentences), "--recheck", str(args.recheck), *flags)


def _evo(*argv: str) -> None:
    """Runs one `evo` command, stopping the table with its message when it fails."""
    print("  $ evo " + " ".join(argv), flush=True)
    done = subprocess.run([sys.executable, "-m", "evo.cli", *argv])
    if done.returncode != 0:
        raise SystemExit(f"paper_table: `evo {' '.join(argv)}` failed (exit {done.returncode})")


def _at(report: dict, fraction: float) -> float | None:
    """Returns the relative perplexity rise at the curve's point nearest `fraction` of heads."""
    curve = report["curve"]
    base = curve[0]["value"]
    point = min(curve, key=lambda c: abs(c["fraction"] - fraction))
    return round(point["value"] / base - 1.0, 4) if abs(point["fraction"] - fraction) < 0.02 else None


def _read(path: str) -> dict:
    """Returns an earlier table's JSON, or {} when there is none."""
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return {}


def line(row: dict) -> str:
    """Returns one row as a line of text."""
    return (f"{row['model']}: {row['heads']} heads, {row['programs']} programs, IoU search {row['iou_search']:.3f} / "
            f"held-out {row['iou_heldout']:.3f}, readable {row['readable_iou_heldout']:.3f}, "
            f"ppl {_pct(row['ppl25'])} / {_pct(row['ppl50'])}, task {row['task_before']:.3f} -> "
            f"{row['task_after25']:.3f}")


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:+.1f} %"


def markdown(doc: dict) -> str:
    """Returns the table as Markdown: the paper's rows, then headcode's."""
    head = ("| model | heads | programs | IoU, search text | IoU, held-out | heads >= 0.8 (held-out) | "
            "readable: IoU held-out, median nodes | perplexity, 25 % / 50 % replaced | "
            "multiple choice, before -> 25 % replaced |\n|---|---|---|---|---|---|---|---|---|\n")
    paper = "".join(f"| {r['model']} | {r['heads']} | < 1,000 | – | {r['iou']:.3f} | – | – | {_pct(r['ppl25'])} / – | – |\n"
                    for r in doc["paper"])
    ours = "".join(
        f"| **headcode, {r['model']}** | {r['heads']} | {r['programs']} | {r['iou_search']:.3f} | "
        f"**{r['iou_heldout']:.3f}** | {r['heads_08_heldout']} | {r['readable_iou_heldout']:.3f}, "
        f"{r['readable_median_length']:.0f} | **{_pct(r['ppl25'])}** / {_pct(r['ppl50'])} | "
        f"{100 * r['task_before']:.1f} % -> {100 * r['task_after25']:.1f} % |\n" for r in doc["rows"])
    return head + paper + ours


BEGIN, END = "<!-- paper_table:begin -->", "<!-- paper_table:end -->"


def _rewrite(page: pathlib.Path, table: str) -> None:
    """Replaces the table between the page's markers (the rest of the page is written by hand)."""
    if not page.is_file():
        return
    text = page.read_text()
    if BEGIN not in text or END not in text:
        return
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    files.write_text(page, f"{before}{BEGIN}\n{table}{END}{after}")


if __name__ == "__main__":
    sys.exit(main())
