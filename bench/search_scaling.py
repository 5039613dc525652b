"""Search throughput against worker count: the same search with 1 and 2 workers (or more), as a ratio.

Each run is a whole `evo search` on the default model's search split (captured once and
cached, then given as --attention-set so no run pays for the capture), same seed and budget:
worker start-up, the offline operator's edits (the fitting included) and evaluation all count.
Prints programs per second per worker count (the fastest of --repeats runs, alternating
worker counts so that a slow spell of a shared machine hits both), the ratio to one
worker, this machine's own ceiling for that ratio (a pure-Python loop), and whether the
runs' fronts agree (they must: same seed, same budget, same result).

    python bench/search_scaling.py [--programs 144] [--repeats 2] [--workers 1 2] [--backend loky|dask]
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


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def machine_ceiling(workers: int, n: int = 20_000_000) -> float:
    """Returns how much faster `workers` processes run a pure-Python loop each than one process runs them all."""
    from concurrent.futures import ProcessPoolExecutor
    t = time.perf_counter()
    for _ in range(workers):
        _spin(n)
    serial = time.perf_counter() - t
    with ProcessPoolExecutor(workers) as ex:
        list(ex.map(_spin, [1000] * workers))   # start the processes first
        t = time.perf_counter()
        list(ex.map(_spin, [n] * workers))
    return serial / (time.perf_counter() - t)


def fronts(run_dir: pathlib.Path) -> list:
    """Returns each head's front (program sources) from the run's checkpoint."""
    from evo.search import archive
    state = json.loads((run_dir / "checkpoint.json").read_text())
    arch = archive.Archive.from_state(state["archive"])
    source = {r.id: r.source for r in arch.records}
    return [[source[pid] for pid in front] for front in state["fronts"]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=144)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--backend", default="loky", choices=("loky", "dask"))
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2, help="runs per worker count, alternating; the fastest counts")
    args = ap.parse_args()
    from evo import capture
    aset = capture.ensure(split="search")   # the default model
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    rates, seen = {}, {}
    try:
        for r in range(args.repeats):   # alternating, so a slow spell of a shared machine hits both
            for w in args.workers:
                took = one_run(str(aset.path), work / f"w{w}-{r}", args.programs, w, args.backend, args.seed)
                rates[w] = max(rates.get(w, 0.0), args.programs / took)
                seen[w] = fronts(work / f"w{w}-{r}")
                print(f"{w} worker(s), {args.backend}, run {r + 1}: {args.programs} programs in {took:.1f} s, "
                      f"{args.programs / took:.2f} programs/s", flush=True)
        base = args.workers[0]
        for w in args.workers[1:]:
            same = "same fronts" if seen[w] == seen[base] else "FRONTS DIFFER"
            print(f"throughput {w} vs {base} worker(s): x{rates[w] / rates[base]:.2f} "
                  f"(target x1.7 for 2 vs 1 on 2 cores); {same}; this machine's own ceiling now: "
                  f"x{machine_ceiling(w) / machine_ceiling(base):.2f} (a pure-Python loop)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
