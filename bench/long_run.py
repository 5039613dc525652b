"""What a long run buys: one search resumed to 500, 2,000 and 5,000 programs, measured at each stop.

    python bench/long_run.py [--model gemma-3-270m] [--seed 23] [--stops 500,2000,5000] [--workers 2]
                             [--run-dir runs/long-gemma-3-270m-s23] [--corpus bench/data/prose.txt]
                             [--json docs/long_run.json]

The run is searched to the first stop (`evo search --seed SEED`) and resumed to each later
one (`evo resume --max-programs N`), never restarted, so every stop is the same search
stopped earlier. At each stop it is exported (RUN/long/N/) and measured:

    search split    mean best-fit IoU over the heads, on the text the search fits
    held-out        each head's best fit, its best front program of at most 200 AST nodes and its
                    readable pick (<= 60 nodes) scored against that head on --corpus (or the
                    validation split), as the paper scores its programs; heads >= 0.8
    vocabulary      prelude names the archive's programs call, how many programs use the token tables
                    read off a head (key_weight, key_after), the run's term library (evo.search.library):
                    its size, the terms added since the last stop, and how many programs use its terms
    novelty         programs rejected before scoring as repeats of earlier ones (evo.search.novelty),
                    the seconds they took to run beside the run's evaluation seconds
    edits           per leg (since the last stop), from the run log: each edit's programs, how many raised
                    some head's best IoU on the search split, and the mean best-fit IoU they added
    cost            seconds per program of this leg, peak resident memory of the run's processes

A stop already measured (RUN/long/N/figures.json) is read back, so the benchmark is rerun
without searching again. Seconds per program come from the run's own clock (the checkpoint's
time spent, across sessions); peak memory only where this invocation ran that leg. Figures of different stops compare because they share one run,
one held-out text and one machine; say which machine when quoting them.
"""

from __future__ import annotations

import argparse
import ast
import json
import pathlib
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from evo import capture, evaluate, files, linguistic, prelude, run  # noqa: E402
from evo.search import checkpoint, export, runlog  # noqa: E402

INVENTED = ("key_weight", "key_after")
WITHIN = 200  # AST nodes of the short best front program the issue names


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gemma-3-270m", help="model to search (default: gemma-3-270m)")
    p.add_argument("--seed", type=int, default=23, help="search seed (default: 23)")
    p.add_argument("--stops", default="500,2000,5000", help="programs at which to measure (default: 500,2000,5000)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    p.add_argument("--run-dir", default=None, help="the run (default: runs/long-MODEL-sSEED)")
    p.add_argument("--corpus", default="bench/data/prose.txt", help="held-out text (default: bench/data/prose.txt)")
    p.add_argument("--json", default=None, help="also write every stop's figures here")
    args = p.parse_args(argv)
    stops = sorted({int(x) for x in args.stops.split(",") if x.strip()})
    run_dir = pathlib.Path(args.run_dir or f"runs/long-{args.model}-s{args.seed}")
    rows = []
    for stop in stops:
        rows.append(stage(run_dir, stop, args, rows[-1] if rows else None))
        print(line(rows[-1]), flush=True)
    print(table(rows))
    log = runlog.read(run_dir / run.LOG)
    for before, row in zip([0, *stops], rows):
        row["edits"] = edits(log, before, row["programs"])
        print(f"programs {before}-{row['programs']}, by edit: " + "; ".join(
            f"{name} {e['programs']} ({e['improved']} raised a head, +{e['gain']:.4f})"
            for name, e in list(row["edits"].items())[:6]))
    if args.json:
        files.write_text(pathlib.Path(args.json), json.dumps({"run": str(run_dir), "rows": rows}, indent=1) + "\n")
    return 0


def stage(run_dir: pathlib.Path, stop: int, args, previous: dict | None = None) -> dict:
    """Returns the figures at `stop` programs, searching or resuming to it first when needed."""
    done = run_dir / "long" / str(stop) / "figures.json"
    if done.is_file():
        return json.loads(done.read_text())
    before, peak = _programs(run_dir), None
    if before == 0:
        peak = _evo("search", "--model", args.model, "--seed", str(args.seed), "--max-programs", str(stop),
             "--workers", str(args.workers), "--run-dir", str(run_dir))
    elif before < stop:
        peak = _evo("resume", str(run_dir), "--max-programs", str(stop), "--workers", str(args.workers))
    elif before > stop:
        raise SystemExit(f"long_run: {run_dir} holds {before} programs, past the stop {stop} it has no figures "
                         "for; measure its stops in order, or start another --run-dir")
    after, spent = _programs(run_dir), float(checkpoint.load(run_dir)["spent"]["seconds"])
    since = previous if previous and previous.get("run_seconds") else {"programs": 0, "run_seconds": 0.0}
    out = run_dir / "long" / str(stop)
    out.mkdir(parents=True, exist_ok=True)
    export.export(run_dir, out / "front")
    figures = {"programs": after, "run_seconds": round(spent, 1),
               "seconds_per_program": round((spent - since["run_seconds"]) / max(after - since["programs"], 1), 3),
               "peak_memory_gb": peak,
               **measure(out / "front", args.corpus, args.workers), **vocabulary(run_dir)}
    files.write_text(done, json.dumps(figures, indent=1) + "\n")
    return figures


def measure(front: pathlib.Path, corpus: str | None, workers: int) -> dict:
    """Returns mean IoU on the search split and, on held-out text, of each head's best, <= 200-node and readable."""
    doc = export.load_front(front)
    picks = {"best": [h["best"]["program"] for h in doc["heads"]],
             "readable": [h["readable"]["program"] for h in doc["heads"]],
             "within_200": [_within(h["front"]) for h in doc["heads"]]}
    aset = capture.ensure(doc["model"], corpus, "search" if corpus else "validation")
    if linguistic.available():
        linguistic.ensure(aset)
    ids = sorted({pid for chosen in picks.values() for pid in chosen})
    sources = [(front / "programs" / f"{pid}.py").read_text() for pid in ids]
    evals = dict(zip(ids, evaluate.evaluate(sources, aset.path, workers=workers)))
    out = {"heads": len(doc["heads"]), "iou_search": round(float(doc["mean_best_iou"]), 4)}
    for kind, chosen in picks.items():
        scores = [float(evals[pid].iou[k]) if evals[pid].ok else 0.0 for k, pid in enumerate(chosen)]
        out[f"{kind}_heldout"] = round(float(np.mean(scores)), 4)
        if kind == "best":
            out["heads_08_heldout"] = int(sum(x >= 0.8 for x in scores))
    lengths = {e["program"]: e["length"] for h in doc["heads"] for e in h["front"]}
    out["within_200_median_length"] = float(np.median([lengths[pid] for pid in picks["within_200"]]))
    out["best_median_length"] = float(np.median([h["best"]["length"] for h in doc["heads"]]))
    return out


def edits(log: list[dict], start: int, stop: int) -> dict:
    """Returns, for the programs start..stop of a run log, per edit (operator) the programs it made, how many
    raised some head's best IoU on the search split past the best of all programs before, and the mean best-fit
    IoU over the heads they added; most programs first."""
    best, out = None, {}
    for n, entry in enumerate(log[:stop]):
        iou = entry.get("iou")
        gain = 0.0 if iou is None or best is None else np.maximum(iou.astype(np.float64) - best, 0.0)
        if n >= start:
            e = out.setdefault(str(entry.get("operator", "?")).removeprefix("symbolic."),
                               {"programs": 0, "improved": 0, "gain": 0.0})
            e["programs"] += 1
            if best is not None and iou is not None:
                e["improved"] += int((gain > 1e-6).any())
                e["gain"] += float(gain.mean())
        if iou is not None:
            best = iou.astype(np.float64) if best is None else np.maximum(best, iou)
    ranked = sorted(out.items(), key=lambda kv: -kv[1]["programs"])
    return {name: {**e, "gain": round(e["gain"], 4)} for name, e in ranked}


def _within(front: list[dict]) -> str:
    """Returns the front program of at most WITHIN nodes with the highest IoU (the shortest when none is)."""
    short = [e for e in front if e["length"] <= WITHIN] or [min(front, key=lambda e: e["length"])]
    return max(short, key=lambda e: (e["iou"], -e["length"]))["program"]


def vocabulary(run_dir: pathlib.Path) -> dict:
    """Returns the prelude names the archive's programs call, how many programs use invented terms, and the
    programs rejected before scoring as repeats (evo.search.novelty) with the evaluation time they took."""
    state = checkpoint.load(run_dir)
    records = [r for r in state["archive"]["records"] if r["ok"]]
    names, invented, with_library = set(), 0, 0
    known = set(prelude.__all__)
    library = [t["name"] for t in state.get("library") or []]
    for r in records:
        called = {n.func.id for n in ast.walk(ast.parse(r["source"]))
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        names |= called & known
        invented += bool(called & set(INVENTED))
        with_library += bool(called & set(library))
    rejected = state.get("novelty") or {}
    evaluated = sum(float(r.get("seconds", 0.0)) for r in state["archive"]["records"])
    return {"library_in_use": len(names), "programs_with_invented_terms": invented,
            "library_terms": library, "library_size": len(library), "programs_with_library_terms": with_library,
            "duplicates_rejected": int(rejected.get("duplicates", 0)),
            "duplicate_seconds": round(float(rejected.get("seconds", 0.0)), 1),
            "evaluation_seconds": round(evaluated, 1)}


def _programs(run_dir: pathlib.Path) -> int:
    """Returns the programs a run has evaluated (0 when there is no run yet)."""
    log = run_dir / run.LOG
    if not (run_dir / run.CHECKPOINT).is_file() or not log.is_file():
        return 0
    with open(log, encoding="utf-8") as f:
        return sum(1 for text in f if text.strip())


def _evo(*argv: str) -> float:
    """Runs one `evo` command; returns the peak resident memory (GB) of it and all its processes together,
    sampled every second (workers and their sandboxes included)."""
    import psutil

    print("  $ evo " + " ".join(argv), flush=True)
    proc = subprocess.Popen([sys.executable, "-m", "evo.cli", *argv])
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid, psutil))
        time.sleep(1.0)
    if proc.returncode != 0:
        raise SystemExit(f"long_run: `evo {' '.join(argv)}` failed (exit {proc.returncode})")
    return round(peak / 2**30, 2)


def _tree_rss(pid: int, psutil) -> int:
    """Returns the resident memory of a process and all its descendants (0 once it has ended; a child that
    ends between listing and reading counts 0)."""
    try:
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in tree:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def line(r: dict) -> str:
    return (f"{r['programs']} programs: search {r['iou_search']:.4f}, held-out best {r['best_heldout']:.4f} "
            f"({r['heads_08_heldout']} heads >= 0.8), <= {WITHIN} nodes {r['within_200_heldout']:.4f}, readable "
            f"{r['readable_heldout']:.4f}; prelude {r['library_in_use']} names, {r['programs_with_invented_terms']} "
            f"programs with token tables; library {r.get('library_size', 0)} terms, used by "
            f"{r.get('programs_with_library_terms', 0)} programs; "
            f"{r.get('duplicates_rejected', 0)} repeats rejected before scoring; "
            f"{_per(r)} s/program, {_gb(r)}")


def _per(r: dict) -> str:
    """Returns the seconds per program, or a dash where they were not recorded."""
    return f"{r['seconds_per_program']:.2f}" if r.get("seconds_per_program") else "–"


def _gb(r: dict) -> str:
    """Returns the peak memory, or a dash where the leg ran in another invocation."""
    return f"{r['peak_memory_gb']} GB" if r.get("peak_memory_gb") else "–"


def table(rows: list[dict]) -> str:
    head = ("| programs | IoU, search split | IoU, held-out (best) | heads >= 0.8 | best <= 200 nodes, held-out "
            "| readable, held-out | prelude names in use | programs with token tables | library terms "
            "| programs with library terms | s / program | peak memory |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|")
    body = [f"| {r['programs']} | {r['iou_search']:.4f} | {r['best_heldout']:.4f} | {r['heads_08_heldout']} | "
            f"{r['within_200_heldout']:.4f} | {r['readable_heldout']:.4f} | {r['library_in_use']} | "
            f"{r['programs_with_invented_terms']} | {r.get('library_size', '–')} | "
            f"{r.get('programs_with_library_terms', '–')} | {_per(r)} | {_gb(r)} |"
            for r in rows]
    return "\n".join([head, *body])


if __name__ == "__main__":
    sys.exit(main())
