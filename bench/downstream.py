"""What the third objective costs: the same search with and without `--downstream-sentences`, as a ratio.

Both runs are whole `evo search` commands on the default model (its attention set captured
once and cached), same seed and budget; the second adds the downstream objective on N
sentences of the validation split (each program's cost replacing a head alone, measured
from that head's layer on, the candidates of one head batched, at most
`Settings.cascade_pairs` per generation). Prints both wall times, their ratio (the target
is at most 2), how many (program, head) costs were measured, their median standard error,
and both runs' mean best-fit IoU.

    python bench/downstream.py [--programs 500] [--sentences 32] [--seed 7] [--workers 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import statistics
import tempfile
import time


def one_run(run_dir: pathlib.Path, programs: int, sentences: int, seed: int, workers: int) -> float:
    """Returns the wall-clock seconds of one search."""
    from evo import cli

    argv = ["search", "--run-dir", str(run_dir), "--max-programs", str(programs), "--seed", str(seed),
            "--workers", str(workers)]
    if sentences:
        argv += ["--downstream-sentences", str(sentences)]
    t = time.perf_counter()
    status = cli.main(argv)
    if status != 0:
        raise SystemExit(f"evo search exited with {status}")
    return time.perf_counter() - t


def summary(run_dir: pathlib.Path) -> dict:
    """Returns the measured costs and the mean best IoU from a run's checkpoint."""
    state = json.loads((run_dir / "checkpoint.json").read_text())
    ppl = state["archive"].get("ppl", [])
    errors = [row[3] for row in ppl if len(row) > 3 and row[3] is not None]
    return {"pairs": len(ppl), "median_se": statistics.median(errors) if errors else None,
            "mean_best": statistics.mean(state["heads"]["best"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--programs", type=int, default=500)
    p.add_argument("--sentences", type=int, default=32)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--keep", metavar="DIR", default=None, help="keep both runs under DIR (default: deleted)")
    args = p.parse_args()
    from evo import models

    models.load()  # converts the GGUF once (cached), so neither run pays for it
    root = pathlib.Path(args.keep or tempfile.mkdtemp(prefix="headcode-downstream-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        times = {}
        for sentences in (0, args.sentences):
            run_dir = root / f"s{sentences}"
            times[sentences] = one_run(run_dir, args.programs, sentences, args.seed, args.workers)
            print(f"downstream sentences {sentences}: {times[sentences]:.1f} s, {summary(run_dir)}", flush=True)
        ratio = times[args.sentences] / times[0]
        print(f"{args.programs} programs: without {times[0]:.1f} s, with the objective on {args.sentences} "
              f"sentences {times[args.sentences]:.1f} s, ratio {ratio:.2f} (target <= 2)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
