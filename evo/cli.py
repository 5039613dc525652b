"""The `evo` command: wires the subcommands in `evo.commands` together."""

from __future__ import annotations

import argparse
import importlib
import sys

from evo.errors import UserError

# Each module registers one or more subcommands and sets `func(args) -> int` on them.
_COMMAND_MODULES = ("capture", "score", "search", "export", "replace", "explain", "report")


class _Parser(argparse.ArgumentParser):
    """A subcommand's parser: --help shows every default."""

    def __init__(self, *args, **kwargs):
        from evo.commands import flags
        kwargs.setdefault("formatter_class", flags.HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """Returns the parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="evo",
        description="headcode: explain attention heads as short Python programs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"evo.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"evo.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs `evo`; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"evo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"evo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
