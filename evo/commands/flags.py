"""What every subcommand's flags share: help that shows each default, and old spellings kept working."""

from __future__ import annotations

import argparse
import sys


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every flag's default, unless its help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return super()._get_help_string(action)


class Deprecated(argparse.Action):
    """An old spelling of a flag: sets the new flag's value and says once that it was renamed."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"evo: {option_string} is deprecated here; use {self.new} (same meaning)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def deprecated(parser, old: str, new: str, dest: str, kind=str) -> None:
    """Adds `old` as a hidden, deprecated spelling of the flag `new` (stored in `dest`)."""
    parser.add_argument(old, dest=dest, type=kind, action=Deprecated, new=new, default=argparse.SUPPRESS)


def backend(parser, default: str | None = "loky") -> None:
    """Adds --backend and --scheduler: where the worker processes run (evo.parallel)."""
    shown = f" (default: {default})" if default else " (default: the run's)"
    parser.add_argument("--backend", default=default, choices=("loky", "dask"),
                        help="loky: processes on this machine; dask: a Dask cluster, a LocalCluster of "
                             f"--workers processes when no scheduler is given{shown}")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="the Dask scheduler to use with --backend dask, e.g. tcp://10.0.0.5:8786 "
                             "(default: $DASK_SCHEDULER_ADDRESS, else a LocalCluster)")


def readable(parser, stored: bool = True) -> None:
    """Adds --readable-nodes and --account-sentences: the readable pick's limit and the text accounts use
    (`stored`: the command reads exports, whose own limit is the default)."""
    from evo.explanation import measure
    from evo.search import picks

    told = f"the export's own, else {picks.READABLE_NODES}" if stored else str(picks.READABLE_NODES)
    parser.add_argument("--readable-nodes", type=_positive, default=None if stored else picks.READABLE_NODES,
                        metavar="N", help=f"a head's readable pick is its best front program of at most N AST "
                                          f"nodes (default: {told})")
    parser.add_argument("--account-sentences", type=_positive, default=measure.SENTENCES, metavar="N",
                        help="sentences of the run's attention set that shares, families and attributions are "
                             f"measured on (default: {measure.SENTENCES})")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
