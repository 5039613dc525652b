"""Building the operator a run asks for, and the operator flags of `evo search`.

`settings["operators"]` is "offline", "llm" or "mixed". The offline operator is always
built: "llm" and "mixed" fall back to it (and use it for failed LLM calls). Its own
settings live under `settings["symbolic"]` (see `operators.edits.symbolic.Settings`).
"""

import dataclasses
import pathlib

from evo.errors import UserError
from operators import base, finish
from operators.edits import symbolic

KINDS = ("offline", "llm", "mixed")


def build(settings: dict, aset_path: pathlib.Path | None, pool=None) -> base.Operator:
    """Returns the operator for a run's settings, its children finished (operators.finish); the offline
    edits run on `pool` (an evo.parallel.Pool) if given."""
    kind = settings.get("operators", "offline")
    if kind not in KINDS:
        raise UserError(f"unknown operators {kind!r}; choose one of {', '.join(KINDS)}")
    offline = build_symbolic(settings.get("symbolic", {}), aset_path, pool)
    if kind == "offline":
        return finish.Finished(offline, offline.causal)
    from operators.llm import setup as llm_setup
    return finish.Finished(llm_setup.build(settings, aset_path, offline), offline.causal)


def build_symbolic(options: dict, aset_path: pathlib.Path | None, pool=None) -> symbolic.SymbolicOperator:
    """Returns the offline operator; without an attention set it cannot fit weights."""
    fields = {f.name for f in dataclasses.fields(symbolic.Settings)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise UserError(f"unknown symbolic setting(s) {unknown}; known: {sorted(fields)}")
    causal = True
    if aset_path is not None:
        from evo import attention_set
        causal = attention_set.AttentionSet.load(aset_path).causal
    return symbolic.SymbolicOperator(symbolic.Settings(**options), aset_path, causal, pool=pool)


def add_arguments(parser) -> None:
    """Adds the operators' flags (the LLM ones, when that part is installed) to a parser."""
    group = parser.add_argument_group("offline operators")
    group.add_argument("--max-length", dest="symbolic_max_length", type=int, default=None,
                       help=f"AST nodes a child program may have (default: {symbolic.Settings.max_length})")
    group.add_argument("--score-terms", dest="symbolic_scored_terms", type=int, default=None, metavar="N",
                       help="score terms a scored program (a softmax of weighted terms) may have "
                            f"(default: {symbolic.Settings.scored_terms})")
    group.add_argument("--wide-terms", dest="symbolic_wide_terms", type=int, default=None, metavar="N",
                       help="score terms a wide scored program (fit_wide: many terms chosen at once, a table of "
                            f"what each kind of query word looks at) may have (default: {symbolic.Settings.wide_terms})")
    from operators.llm import setup as llm_setup
    llm_setup.add_arguments(parser)


def settings_from_args(args) -> dict:
    """Returns the operator settings a run stores in its config.json (never an API key)."""
    settings = {"operators": args.operators}
    for flag, name in (("--max-length", "max_length"), ("--score-terms", "scored_terms"),
                       ("--wide-terms", "wide_terms")):
        value = getattr(args, f"symbolic_{name}", None)
        if value is not None:
            if value < 1:
                raise UserError(f"{flag} must be positive, got {value}")
            settings.setdefault("symbolic", {})[name] = value
    from operators.llm import setup as llm_setup
    settings.update(llm_setup.settings_from_args(args))
    return settings
