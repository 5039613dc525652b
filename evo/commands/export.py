"""`evo export`: write a run's Pareto fronts as program files, front.json and best_per_head.csv."""

from __future__ import annotations

import pathlib

from evo.commands import flags


def register(sub) -> None:
    """Adds the export subcommand."""
    e = sub.add_parser("export", help="write a run's Pareto fronts as program files",
                       description="Write every program on a head's front, front.json and "
                                   "best_per_head.csv.")
    e.add_argument("run", help="the run directory")
    e.add_argument("--out", required=True, help="output directory (created; an earlier export there is replaced)")
    flags.readable(e, stored=False)
    e.set_defaults(func=run_export)


def run_export(args) -> int:
    """Writes a run's fronts; returns the exit status."""
    from evo.search import export

    s = export.export(pathlib.Path(args.run), pathlib.Path(args.out), args.readable_nodes, args.account_sentences)
    families = ", ".join(f"{name} {count}" for name, count in s["families"].items())
    print(f"evo export: {s['programs']} programs on the fronts of {s['heads']} heads -> {args.out}\n"
          f"  readable (<= {s['readable_nodes']} nodes): mean IoU {s['mean_readable_iou']:.4f}, "
          f"median length {s['median_readable_length']:.0f}\n"
          f"  best fit: mean IoU {s['mean_best_iou']:.4f}, median length {s['median_best_length']:.0f}\n"
          f"  families: {families}")
    return 0
