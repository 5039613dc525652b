"""`evo score`: score program files against every head of a model and report the best fits."""

from __future__ import annotations

from evo.commands import flags

import os

from evo import models


def register(sub) -> None:
    """Adds the score subcommand."""
    p = sub.add_parser(
        "score", help="score program files against every attention head",
        description="Score every program (files, or directories of *.py) against every head of a "
                    "model's attention on a corpus; print each head's best program and its IoU.")
    p.add_argument("paths", nargs="+", metavar="PATHS", help="program files or directories of *.py")
    p.add_argument("--model", default=models.DEFAULT_MODEL, help="preset, hub id or local path")
    p.add_argument("--corpus", default=None, help=".txt or .jsonl corpus (default: built-in)")
    p.add_argument("--split", default="search", help="built-in corpus split (default: search)")
    p.add_argument("--sentence-tokens", dest="max_tokens", type=int, default=64, help="tokens per sentence at most")
    p.add_argument("--attention-set", default=None,
                   help="score against this stored attention set instead of capturing one")
    p.add_argument("--device", default="cpu", help="device for capturing (e.g. cuda)")
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8),
                   help="parallel evaluation processes (default: CPU count, at most 8)")
    flags.backend(p)
    p.add_argument("--time-limit", type=float, default=2.0, help="seconds per program per sentence")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the report as JSON")
    flags.deprecated(p, "--max-tokens", "--sentence-tokens", "max_tokens", int)
    p.set_defaults(func=run)


def _attention_set(args):
    """Returns the attention set to score against: the one given, or a cached capture."""
    from evo import attention_set

    if args.attention_set:
        return attention_set.AttentionSet.load(args.attention_set, verify=True)
    from evo import capture

    return capture.ensure(args.model, corpus_path=args.corpus, split=args.split,
                          max_tokens=args.max_tokens, device=args.device)


def run(args) -> int:
    """Runs `evo score`; returns 0 (1 when every program failed)."""
    from rich.console import Console

    from evo import sandbox, score
    from evo.errors import UserError

    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.time_limit <= 0:
        raise UserError(f"--time-limit must be positive, got {args.time_limit}")
    files = score.collect(args.paths)   # fail on bad paths before any capture
    if args.json:
        score.check_json_target(args.json)
    aset = _attention_set(args)
    report = score.score([str(f) for f in files], aset, sandbox.Limits(seconds=args.time_limit),
                         workers=args.workers, backend=args.backend, scheduler=args.scheduler)
    report["split"] = None if args.attention_set or args.corpus else args.split
    score.render(report, Console())
    if args.json:
        print(f"wrote {score.write_json(report, args.json)}")
    return 0 if report["mean_best_iou"] is not None else 1
