"""Readable picks on held-out text: each head's readable program (and its best fit) scored against that head.

    python bench/readable.py EXPORT [--corpus bench/data/prose.txt | --split validation] [--json OUT]

EXPORT is an `evo export` directory (its front.json names each head's readable and best picks).
The programs run on the held-out text's attention set (captured once and cached) and each pick is
scored against its own head, as the paper scores its programs. Prints the mean IoU and median
length of the readable picks, how many are within the limit, and the best fit's mean beside them.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from evo import capture, evaluate, linguistic  # noqa: E402
from evo.search import export  # noqa: E402


def measure(export_dir: pathlib.Path, corpus: str | None = None, split: str = "validation",
            workers: int = 2) -> dict:
    """Returns each head's readable and best picks scored against that head on held-out text, and their means."""
    doc = export.load_front(export_dir)
    aset = capture.ensure(doc["model"], corpus, "search" if corpus else split)
    if linguistic.available():
        linguistic.ensure(aset)   # programs with linguistic terms read the text's parse
    picks = {kind: [h[kind]["program"] for h in doc["heads"]] for kind in ("readable", "best")}
    ids = sorted(set(picks["readable"]) | set(picks["best"]))
    sources = [(export_dir / "programs" / f"{pid}.py").read_text() for pid in ids]
    evals = dict(zip(ids, evaluate.evaluate(sources, aset.path, workers=workers)))
    out = {"export": str(export_dir), "text": corpus or f"builtin:{split}", "heads": len(doc["heads"]),
           "readable_nodes": doc.get("readable_nodes")}
    for kind, chosen in picks.items():
        scores = [float(evals[pid].iou[k]) if evals[pid].ok else 0.0 for k, pid in enumerate(chosen)]
        lengths = [h[kind]["length"] for h in doc["heads"]]
        out[kind] = {"mean_iou": round(float(np.mean(scores)), 4), "median_length": float(np.median(lengths)),
                     "max_length": int(max(lengths)), "at_least_0.8": sum(x >= 0.8 for x in scores),
                     "iou": [round(x, 4) for x in scores]}
    limit = doc.get("readable_nodes") or 60
    out["readable"]["within_limit"] = sum(h["readable"]["length"] <= limit for h in doc["heads"])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export", help="an evo export directory (front.json + programs/)")
    p.add_argument("--corpus", default=None, help="held-out text (.txt/.jsonl); default: --split")
    p.add_argument("--split", default="validation", help="built-in split when no --corpus (default: validation)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    p.add_argument("--json", default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    out = measure(pathlib.Path(args.export), args.corpus, args.split, args.workers)
    limit = out["readable_nodes"] or 60
    r, b = out["readable"], out["best"]
    print(f"{out['text']}, {out['heads']} heads: readable (<= {limit} nodes) mean IoU {r['mean_iou']:.4f}, "
          f"median length {r['median_length']:.0f}, {r['within_limit']} within the limit; "
          f"best fit {b['mean_iou']:.4f} at median length {b['median_length']:.0f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
