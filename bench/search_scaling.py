"""Search throughput against worker count: the same search with 1 and 2 workers (or more), as a ratio.

Each run is a whole `evo search` on the default model's search split (captured once and
cached, then given as --attention-set so no run pays for the capture), same seed and budget:
worker start-up, the offline operator's edits (the fitting included) and evaluation all count.
Prints programs per second per worker count, the ratio to one worker, and whether the
runs' fronts agree (they must: same seed, same budget, same result).

    python bench/search_scaling.py [--programs 240] [--workers 1 2] [--backend loky|dask]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import tempfile
import time


def one_run(aset_path: str, run_dir: pathlib.Path, programs: int, workers: int, backend: str, seed: int) -> float:
    """Returns the wall-clock seconds of one search."""
    from evo import cli
    t = time.perf_counter()
    status = cli.main(["search", "--attention-set", aset_path, "--run-dir", str(run_dir),
                       "--max-programs", str(programs), "--workers", str(workers),
                       "--backend", backend, "--seed", str(seed)])
    if status != 0:
        raise SystemExit(f"evo search exited with {status}")
    return time.perf_counter() - t


def fronts(run_dir: pathlib.Path) -> list:
    """Returns each head's front (program sources) from the run's checkpoint."""
    from evo.search import archive
    state = json.loads((run_dir / "checkpoint.json").read_text())
    arch = archive.Archive.from_state(state["archive"])
    source = {r.id: r.source for r in arch.records}
    return [[source[pid] for pid in front] for front in state["fronts"]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=240)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--backend", default="loky", choices=("loky", "dask"))
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    from evo import capture
    aset = capture.ensure(model=None, corpus_path=None, split="search")
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    rates, seen = {}, {}
    try:
        for w in args.workers:
            took = one_run(str(aset.path), work / f"w{w}", args.programs, w, args.backend, args.seed)
            rates[w] = args.programs / took
            seen[w] = fronts(work / f"w{w}")
            print(f"{w} worker(s), {args.backend}: {args.programs} programs in {took:.1f} s, "
                  f"{rates[w]:.2f} programs/s", flush=True)
        base = args.workers[0]
        for w in args.workers[1:]:
            same = "same fronts" if seen[w] == seen[base] else "FRONTS DIFFER"
            print(f"throughput {w} vs {base} worker(s): x{rates[w] / rates[base]:.2f} "
                  f"(target x1.7 for 2 vs 1 on 2 cores); {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
