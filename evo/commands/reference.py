"""The CLI reference page (docs/cli.md), generated from the parsers so that it cannot drift from `--help`.

`python -m evo.commands.reference > docs/cli.md` writes it; a test checks that the
committed page equals what the parsers say today.
"""

from __future__ import annotations

import argparse
import sys

from evo import cli

_INTRO = """# CLI reference

Every `evo` command and every flag, generated from the parsers themselves
(`python -m evo.commands.reference > docs/cli.md`; a test fails when this page and
`--help` disagree). A bad flag or a bad file is one line on stderr and exit status 2;
Ctrl-C is exit status 130 (a search writes its checkpoint first).
"""


def render() -> str:
    """Returns the Markdown reference for every subcommand."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    parts = [_INTRO]
    for name, command in sub.choices.items():
        parts.append(_command(name, helps.get(name, ""), command))
    return "\n".join(parts)


def _command(name: str, summary: str, parser: argparse.ArgumentParser) -> str:
    """Returns one command's section: summary, usage line and a table of its arguments."""
    formatter = parser._get_formatter()
    rows = ["| argument | meaning |", "|---|---|"]
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        rows.append(f"| {_spelling(action)} | {_cell(formatter._expand_help(action) if action.help else '')} |")
    usage = " ".join(parser.format_usage().split())
    description = " ".join((parser.description or summary or "").split())
    return f"## evo {name}\n\n{description}\n\n```\n{usage}\n```\n\n" + "\n".join(rows) + "\n"


def _spelling(action: argparse.Action) -> str:
    """Returns how an argument is written: `--flag VALUE` or the positional's name."""
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    takes = action.nargs != 0
    value = f" {action.metavar or action.dest.upper()}" if takes else ""
    return ", ".join(f"`{flag}{value}`" for flag in action.option_strings)


def _cell(text: str) -> str:
    """Returns help text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


if __name__ == "__main__":
    sys.stdout.write(render())
