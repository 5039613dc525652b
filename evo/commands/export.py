"""`evo export`: write a run's Pareto fronts as program files, front.json and best_per_head.csv."""

from __future__ import annotations

import pathlib


def register(sub) -> None:
    """Adds the export subcommand."""
    e = sub.add_parser("export", help="write a run's Pareto fronts as program files",
                       description="Write every program on a head's front, front.json and "
                                   "best_per_head.csv.")
    e.add_argument("run", help="the run directory")
    e.add_argument("--out", required=True, help="output directory (created; an earlier export there is replaced)")
    e.set_defaults(func=run_export)


def run_export(args) -> int:
    """Writes a run's fronts; returns the exit status."""
    from evo.search import export

    summary = export.export(pathlib.Path(args.run), pathlib.Path(args.out))
    print(f"evo export: {summary['programs']} programs on the fronts of {summary['heads']} heads, "
          f"mean best-fit IoU {summary['mean_best_iou']:.4f} -> {args.out}\n"
          f"  picks per head: best (median length {summary['median_best_length']:.0f}) and simplest "
          f"(median length {summary['median_simplest_length']:.0f}, mean IoU {summary['mean_simplest_iou']:.4f})")
    return 0
