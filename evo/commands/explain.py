"""`evo explain`: what a head does, in words, with its programs and its attention next to theirs."""

from __future__ import annotations

import argparse

from evo.commands import flags
from evo.explanation import families


def register(subparsers) -> None:
    """Adds the `explain` subcommand."""
    p = subparsers.add_parser(
        "explain", help="say in words what a head does, with its programs and a heatmap",
        description="With no head: every head on one screen, one line each (head, family, the readable "
                    "program's IoU and length, where the head's attention goes and the program's, in shares). "
                    "With a head (L.H): its readable program and measured account, its best fit with what it "
                    "adds, and for one sentence the head's attention next to the readable program's.")
    p.add_argument("source", metavar="SOURCE", help="a run directory (runs/NAME) or an export (front.json + programs/)")
    p.add_argument("head", metavar="L.H", nargs="?", default=None, help="the head, e.g. 5.1 or L5.H1 (default: all heads)")
    p.add_argument("--sentence", type=int, default=0,
                   help="sentence of the run's attention set to draw (default: %(default)s)")
    p.add_argument("--family", default=None, choices=families.NAMES,
                   help="with no head: list only the heads of this family (default: every head)")
    flags.readable(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Prints the explanation; returns the exit status."""
    from rich.console import Console

    from evo import explain, results
    res = results.load(args.source, args.readable_nodes, args.account_sentences)
    if args.head is not None:
        res.index(args.head)  # a bad head is a one-line error before anything is drawn
    explain.show(Console(), res, args.head, args.sentence, args.family)
    return 0
