"""`evo report`: a web page with every head next to its program, and figures for a paper."""

from __future__ import annotations

import argparse
import pathlib

from evo.commands import flags


def register(subparsers) -> None:
    """Adds the `report` subcommand."""
    p = subparsers.add_parser(
        "report", help="write a web page showing every head next to its program",
        description="Write one folder (index.html plus figures) that opens with no network and no server: "
                    "an overview, a grid of heads coloured by family (and one by IoU), and per head its readable "
                    "program with its measured account, its attention beside the program's on its best, median "
                    "and worst sentence, and its best fit with what each family of terms is worth.")
    p.add_argument("source", metavar="SOURCE", help="a run directory (runs/NAME) or an export (front.json + programs/)")
    p.add_argument("--out", metavar="DIR", default=None, help="report folder (default: SOURCE/report)")
    p.add_argument("--replace", metavar="JSON", default=None, help="an `evo replace --json` file to add its curve")
    p.add_argument("--figures", metavar="DIR", default=None, help="also write one figure per head here, for a paper")
    p.add_argument("--format", default="png", choices=("png", "svg"), help="format of --figures (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="processes drawing figures (default: %(default)s)")
    flags.readable(p)
    p.add_argument("--open", action="store_true", help="open the page in a browser when it is written")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Writes the report; returns the exit status."""
    import time

    from evo import report
    from evo.errors import UserError
    if args.workers < 1:
        raise UserError(f"--workers must be positive, got {args.workers}")
    start = time.perf_counter()
    index = report.build(args.source, args.out, args.replace, args.figures, args.format, args.workers,
                         args.readable_nodes, args.account_sentences)
    print(f"evo report: {index} ({time.perf_counter() - start:.1f} s)"
          + (f"; figures in {args.figures}" if args.figures else ""))
    if args.open:
        import webbrowser
        webbrowser.open(pathlib.Path(index).resolve().as_uri())
    return 0
