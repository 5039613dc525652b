"""What the linguistic vocabulary costs: annotation time per sentence, and search throughput with and without it.

Annotation: every sentence of the built-in corpus (all splits) rendered with the default
model's tokenizer, parsed in batches by the installed spaCy pipeline and mapped to tokens
(`evo.linguistic.for_sentences`); the pipeline's load time is printed apart. Throughput:
the same `evo search` (default model, seed, budget) with `--vocabulary base` and
`--vocabulary linguistic`, in both orders (the first search of a process pays one-off
costs), programs per second of each and their ratio, and the runs' mean best-fit IoU on
the search split.

    python bench/linguistic.py [--programs 150] [--seed 7] [--workers 2] [--order linguistic-first]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import statistics
import tempfile
import time


def annotation_time() -> None:
    """Prints the pipeline's load time and the annotation time per sentence."""
    from evo import corpus, linguistic, models, tokens

    loaded = models.load()
    sentences = [s for split in corpus.SPLITS for s in corpus.load(None, split).sentences]
    rendered = [tokens.render(loaded.tokenizer, loaded.tokenizer(s)["input_ids"]) for s in sentences]
    t = time.perf_counter()
    linguistic.pipeline()
    load = time.perf_counter() - t
    t = time.perf_counter()
    linguistic.for_sentences(rendered)
    per = (time.perf_counter() - t) / len(rendered)
    print(f"{linguistic.describe()}: pipeline load {load:.1f} s; {len(rendered)} sentences, "
          f"{1000 * per:.2f} ms per sentence (annotated once per attention set)", flush=True)


def one_search(run_dir: pathlib.Path, vocabulary: str, programs: int, seed: int, workers: int) -> float:
    """Returns the wall-clock seconds of one search."""
    from evo import cli

    t = time.perf_counter()
    status = cli.main(["search", "--run-dir", str(run_dir), "--max-programs", str(programs), "--seed", str(seed),
                       "--workers", str(workers), "--vocabulary", vocabulary])
    if status != 0:
        raise SystemExit(f"evo search exited with {status}")
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--programs", type=int, default=150)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--order", choices=["both", "base-first", "linguistic-first"], default="both",
                   help="which search runs first; the first pays one-off costs (~20 %% here), so `both` runs "
                        "base, linguistic, linguistic, base and compares the totals")
    args = p.parse_args()
    annotation_time()
    root = pathlib.Path(tempfile.mkdtemp(prefix="headcode-linguistic-"))
    try:
        seconds, best = {"base": 0.0, "linguistic": 0.0}, {}
        order = {"both": ("base", "linguistic", "linguistic", "base"), "base-first": ("base", "linguistic"),
                 "linguistic-first": ("linguistic", "base")}[args.order]
        runs = {v: order.count(v) for v in seconds}
        for k, vocabulary in enumerate(order):
            run_dir = root / f"{k}-{vocabulary}"
            took = one_search(run_dir, vocabulary, args.programs, args.seed, args.workers)
            seconds[vocabulary] += took
            state = json.loads((run_dir / "checkpoint.json").read_text())
            best[vocabulary] = statistics.mean(state["heads"]["best"])
            print(f"--vocabulary {vocabulary} (search {k + 1} of {len(order)}): {args.programs / took:.2f} "
                  f"programs/s, mean best IoU {best[vocabulary]:.4f}", flush=True)
        rate = {v: runs[v] * args.programs / seconds[v] for v in seconds}
        print(f"programs/s over all searches: base {rate['base']:.2f}, linguistic {rate['linguistic']:.2f}; "
              f"throughput with the linguistic vocabulary / without: {rate['linguistic'] / rate['base']:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
