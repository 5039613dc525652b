"""Memory of a 2-worker search at TinyLlama's size: 22 layers x 32 heads (704 heads), 200 sentences.

Builds a random Llama-shaped model from a config (as bench/report.py does), captures it on
200 sentences of the built-in corpus, then runs `evo search` in a child process and samples
the whole process tree (the search, its workers, their sandboxes) twice a second. Prints the
peak of the summed PSS (proportional set size: a page shared by several processes, such as
the memory-mapped targets, counts once in all) beside the summed RSS (which counts it in
every process that maps it), against the 2 GiB budget.

    python bench/search_memory.py [--sentences 200] [--join 3] [--programs 60] [--workers 2]
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def tree_memory(pid: int) -> tuple[float, float, list]:
    """Returns (summed PSS, summed RSS) in GiB of `pid` and its descendants, and (role, PSS GiB) per process."""
    import psutil
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0, 0.0, []
    pss = rss = 0
    each = []
    for p in procs:
        try:
            full = p.memory_full_info()
            cmd = " ".join(p.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        pss += full.pss
        rss += full.rss
        role = ("search" if p.pid == pid else "sandbox" if "evo.sandbox" in cmd
                else "worker" if "loky" in cmd else "other")
        each.append((role, full.pss / 2**30))
    return pss / 2**30, rss / 2**30, each


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--programs", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--join", type=int, default=3,
                    help="built-in sentences joined into one (theirs are short; 3 make about 60 tokens)")
    args = ap.parse_args()
    from report import random_tinyllama

    from evo import capture, corpus
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        model_dir = random_tinyllama(work / "tinyllama")
        pool = corpus.load(None, "search").sentences
        text = [" ".join(pool[(i * args.join + j) % len(pool)] for j in range(args.join))
                for i in range(args.sentences)]
        (work / "corpus.txt").write_text("\n".join(text) + "\n")
        t = time.perf_counter()
        aset = capture.ensure(model=str(model_dir), corpus_path=str(work / "corpus.txt"))
        size = (aset.path / "attention.safetensors").stat().st_size / 2**30
        print(f"captured {len(aset)} sentences x {aset.n_layers * aset.n_heads} heads in "
              f"{time.perf_counter() - t:.0f} s ({size:.2f} GiB of float16 attention)", flush=True)
        cmd = [sys.executable, "-c", "import sys; from evo.cli import main; sys.exit(main(sys.argv[1:]))",
               "search", "--attention-set", str(aset.path), "--run-dir", str(work / "run"),
               "--max-programs", str(args.programs), "--workers", str(args.workers), "--seed", "1"]
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = (0.0, 0.0, [])
        while proc.poll() is None:
            now = tree_memory(proc.pid)
            peak = max(peak, now)
            time.sleep(0.5)
        if proc.returncode != 0:
            print(f"evo search failed ({proc.returncode}): {proc.stderr.read()[-400:]}")
            return 1
        print(f"search of {args.programs} programs with {args.workers} workers: {time.perf_counter() - t:.0f} s")
        print(f"peak memory of the search's {len(peak[2])} processes: PSS {peak[0]:.2f} GiB in total "
              f"(budget 2 GiB); summed RSS {peak[1]:.2f} GiB (counts shared pages once per process)")
        print("  at the peak, PSS per process: " + ", ".join(f"{role} {gib:.2f} GiB" for role, gib in peak[2]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
