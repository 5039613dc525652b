"""`evo replace`: swap heads for their best programs inside the model and measure the cost."""

from __future__ import annotations

from evo.commands import flags

import argparse
import sys

from evo import corpus


def register(subparsers) -> None:
    """Adds the `replace` subcommand."""
    p = subparsers.add_parser(
        "replace", help="replace heads by their programs and measure perplexity (and a task)",
        description="Replace heads by their programs inside the model, measure perplexity on held-out "
                    "text (embedding cosine for encoders) up to --fraction of all heads, and compare with "
                    "two baselines at that fraction: the same heads as uniform attention, and random heads "
                    "replaced by their programs. The cost schedule (default) measures each head's candidate "
                    "programs on a selection text the final figure does not use, keeps the cheapest, and "
                    "adds heads cheapest first; the iou schedule (the paper's) takes heads by best-fit IoU, "
                    "skipping those whose marginal cost exceeds --threshold. --task also scores a "
                    "multiple-choice task (lm-evaluation-harness style) at the same heads.")
    p.add_argument("source", metavar="SOURCE", help="a run directory (runs/NAME) or an export (front.json + programs/)")
    p.add_argument("--schedule", choices=("cost", "iou"), default="cost",
                   help="cost: cheapest measured programs and heads first; iou: the paper's greedy by best-fit "
                        "IoU (default: cost)")
    p.add_argument("--fraction", type=float, default=None,
                   help="fraction of all heads to replace, up to 1.0; the curve is measured up to it "
                        "(default: 0.25; not with --heads)")
    p.add_argument("--heads", default=None, metavar="L.H,...",
                   help="replace exactly these heads (e.g. 3.1,5.0) by their best programs, in this order")
    p.add_argument("--corpus", metavar="FILE", default=None,
                   help=".txt or .jsonl text to measure on, used whole (default: built-in perplexity split)")
    p.add_argument("--split", default=None, choices=corpus.SPLITS,
                   help="built-in corpus split (default: perplexity)")
    p.add_argument("--select-corpus", metavar="FILE", default=None,
                   help="text the cost schedule measures candidates on (default: the built-in --select-split)")
    p.add_argument("--select-split", default="validation", choices=corpus.SPLITS,
                   help="built-in split the cost schedule measures on (default: validation)")
    p.add_argument("--select-sentences", type=int, default=64,
                   help="sentences of the selection text the cost schedule uses (default: 64)")
    p.add_argument("--select-measure", choices=("divergence", "perplexity"), default="divergence",
                   help="what the cost schedule ranks candidates by on a decoder: divergence (KL of the "
                        "next-token predictions from the unmodified model's; far less noisy) or perplexity "
                        "(the change on the text's own tokens); the final figure is perplexity either way "
                        "(default: divergence)")
    p.add_argument("--candidates", type=int, default=3,
                   help="programs per head the cost schedule measures: best, simplest, next by IoU (default: 3)")
    p.add_argument("--recheck", type=int, default=3,
                   help="front runners the cost schedule re-measures per step over the heads taken (default: 3)")
    p.add_argument("--remeasure", action="store_true",
                   help="measure every candidate again even when SOURCE holds costs measured on the same "
                        "selection text (by default those are reused)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="iou: skip a head whose marginal cost exceeds this; cost: stop there "
                        "(0.5 = +50%% perplexity; default: 0.5)")
    p.add_argument("--task", metavar="FILE.jsonl|builtin", default=None,
                   help="also score this multiple-choice task (SciQ, PIQA, HellaSwag, ARC-Easy or "
                        "{context, choices, answer} JSONL; builtin: the project's own 200+ items)")
    p.add_argument("--task-items", type=int, default=None, help="score only the first N task items")
    p.add_argument("--sentence-tokens", dest="max_tokens", type=int, default=128,
                   help="tokens per sentence, specials included; longer ones are truncated (default: 128)")
    p.add_argument("--sentences", type=int, default=None, help="measure on the first N sentences only")
    p.add_argument("--batch-size", type=int, default=8, help="sentences per forward pass (default: 8)")
    p.add_argument("--model", default=None, help="load this model instead of the one the source names "
                                                 "(e.g. a local copy); it must have the same heads")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda (default: cpu)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                   help="model dtype (default: float32; bfloat16 halves a GPU's memory for 1B+ models)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random-heads baseline (default: 0)")
    p.add_argument("--json", metavar="OUT", default=None, help="write the report as JSON")
    p.add_argument("--plot", metavar="OUT.png", default=None, help="draw the measure against the fraction replaced")
    p.add_argument("--compare", metavar="REPORT.json", action="append", default=[],
                   help="also draw this earlier --json report's curve in --plot (e.g. the other schedule); "
                        "repeatable")
    flags.deprecated(p, "--max-tokens", "--sentence-tokens", "max_tokens", int)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs the schedule and baselines (and the task); prints a summary, writes --json and --plot."""
    import pathlib

    from evo import candidates, costs, files, models, perplexity, replace
    from evo.errors import UserError

    _check(args)
    heads = candidates.parse_heads(args.heads) if args.heads is not None else None
    best = candidates.load_best(args.source)
    if heads:
        best.require(heads)  # before the model loads
    task = _task(args) if args.task else None
    others = [files.read_json(pathlib.Path(path), "--compare report") for path in args.compare]
    text = _text(args.corpus, args.split or ("search" if args.corpus else "perplexity"), args.sentences)
    loaded = models.load(args.model or best.model, device=args.device, dtype=args.dtype)
    if (loaded.n_layers, loaded.n_heads) != (best.n_layers, best.n_heads):
        raise UserError(f"{best.origin} has {best.n_layers} layers x {best.n_heads} heads, the model "
                        f"{loaded.name} has {loaded.n_layers} x {loaded.n_heads}")
    settings = perplexity.Settings(max_tokens=args.max_tokens, batch_size=args.batch_size)
    meter = perplexity.Meter(loaded, list(text.sentences), settings)
    select = None
    if heads is None and args.schedule == "cost":
        chosen = _text(args.select_corpus, "search" if args.select_corpus else args.select_split,
                       args.select_sentences)
        if chosen.fingerprint == text.fingerprint:
            print("warning: the selection text is the final text; the figure is not held out", file=sys.stderr)
        select = perplexity.Meter(loaded, list(chosen.sentences), settings, costs=args.select_measure)
    known = None
    if select is not None and not args.remeasure:
        known = costs.measured_on(best.origin, select.fingerprint)
        if known:
            print(f"reusing {len(known)} program costs recorded in {best.origin} for this selection text "
                  "(--remeasure to measure again)", file=sys.stderr)
    plan = replace.Plan(schedule=args.schedule, threshold=args.threshold, candidates=args.candidates,
                        recheck=args.recheck, seed=args.seed, known=known)
    report = replace.run(meter, best, fraction=args.fraction or 0.25, heads=heads, plan=plan, select=select,
                         log=_log)
    report["corpus"] = {"source": text.source, "fingerprint": text.fingerprint}
    if select is not None:
        report["selection"].update(source=chosen.source, corpus_fingerprint=chosen.fingerprint,
                                   measure=select.costs)
        where = costs.record(best.origin, report["candidates"], report["selection"])
        if where:
            print(f"recorded {len(report['candidates'])} measured program costs in {where}")
    if task is not None:
        from evo import tasks

        report["task"] = tasks.under_replacement(loaded, task, best, report, settings, _log)
    print(summary(report))
    if args.json:
        replace.write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        replace.plot(report, args.plot, others)
        print(f"wrote {args.plot}")
    return 0


def _text(path, split, limit):
    """Returns a corpus (first `limit` sentences when given), printing its warnings."""
    from evo import corpus

    text = corpus.load(path, split)
    for note in text.warnings:
        print(f"warning: {note}", file=sys.stderr)
    return text.head(limit) if limit else text


def _task(args):
    """Returns the task to score, read now so a bad file fails before any model runs."""
    from evo import tasks

    task = tasks.load(args.task)
    return task.head(args.task_items) if args.task_items else task


def _check(args: argparse.Namespace) -> None:
    """Raises UserError for contradictory or out-of-range flags."""
    from evo.errors import UserError

    if args.heads is not None and not args.heads.strip(" ,"):
        raise UserError("--heads is empty; give heads as L.H,L.H (e.g. 5.1,11.2) or leave it out")
    if args.heads and args.fraction is not None:
        raise UserError("give --heads or --fraction, not both")
    for flag in ("json", "plot"):
        _writable(getattr(args, flag), f"--{flag}")
    if args.fraction is not None and not 0 < args.fraction <= 1:
        raise UserError(f"--fraction must be in (0, 1], got {args.fraction}")
    if args.threshold < 0:
        raise UserError(f"--threshold must be non-negative, got {args.threshold}")
    for flag in ("max_tokens", "batch_size", "sentences", "select_sentences", "candidates", "recheck",
                 "task_items"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")


def _writable(path, flag: str) -> None:
    """Raises UserError now, before any computing, when an output file cannot be written there."""
    import os
    import pathlib

    from evo.errors import UserError
    if path is None:
        return
    out = pathlib.Path(path)
    if out.is_dir():
        raise UserError(f"{flag} {out} is a directory; give a file name")
    if not out.parent.is_dir():
        raise UserError(f"{flag} {out}: the folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise UserError(f"{flag} {out}: the folder {out.parent} is not writable")


def _log(line: str) -> None:
    """Prints one progress line to stderr."""
    print(line, file=sys.stderr, flush=True)


def summary(report: dict) -> str:
    """Returns the lines `evo replace` prints about a report."""
    ppl = report["metric"] == "perplexity"
    name, change = ("ppl", "increase") if ppl else ("cosine", "decrease")
    base, final = report[f"baseline_{name}"], report[f"replaced_{name}"]
    b = report["baselines"]
    lines = [
        f"model: {report['model']} ({report['heads_total']} heads), measured on {report['sentences']} "
        f"sentences ({report['tokens']} {'tokens' if ppl else 'embeddings'})",
        f"replaced {len(report['replaced'])} heads ({report['fraction']:.1%}), skipped {len(report['skipped'])}",
        f"{report['metric']}: {base:.4f} -> {final:.4f} ({change} {report[change]:+.2%})",
        f"baselines at the same fraction: same heads uniform {b['uniform']:.4f} "
        f"({report['baseline_changes']['uniform']:+.2%}), random heads {b['random']:.4f} "
        f"({report['baseline_changes']['random']:+.2%})",
    ]
    if report.get("schedule"):
        lines.insert(1, f"schedule: {report['schedule']}" + (
            f" (candidates measured by {report['selection'].get('measure', 'perplexity')} on "
            f"{report['selection']['sentences']} selection sentences)"
            if report.get("selection") else ""))
    task = report.get("task")
    if task:
        lines.append(f"task {task['name']} ({task['items']} items), acc / acc_norm: " + ", ".join(
            f"{name} {task[name]['acc']:.1%} / {task[name]['acc_norm']:.1%}"
            for name in ("unmodified", "replaced", "uniform", "random")))
    return "\n".join(lines)
