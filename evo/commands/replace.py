"""`evo replace`: swap heads for their best programs inside the model and measure the cost."""

from __future__ import annotations

from evo.commands import flags

import argparse
import sys

from evo import corpus


def register(subparsers) -> None:
    """Adds the `replace` subcommand."""
    p = subparsers.add_parser(
        "replace", help="replace heads by their programs and measure perplexity",
        description="Replace heads by their best programs inside the model (greedily in order of "
                    "best-fit IoU, skipping heads whose marginal cost exceeds --threshold, until "
                    "--fraction of all heads), measure perplexity on held-out text (embedding cosine "
                    "for encoders), and compare with two baselines at the same fraction: the same heads "
                    "as uniform attention, and random heads replaced by their best programs.")
    p.add_argument("source", metavar="SOURCE", help="a run directory (runs/NAME) or an export (front.json + programs/)")
    p.add_argument("--fraction", type=float, default=None,
                   help="fraction of all heads to replace (default: 0.25; not with --heads)")
    p.add_argument("--heads", default=None, metavar="L.H,...",
                   help="replace exactly these heads (e.g. 3.1,5.0) by their best programs, in this order")
    p.add_argument("--corpus", metavar="FILE", default=None,
                   help=".txt or .jsonl text to measure on, used whole (default: built-in perplexity split)")
    p.add_argument("--split", default=None, choices=corpus.SPLITS,
                   help="built-in corpus split (default: perplexity)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="skip a head whose marginal cost exceeds this (0.5 = +50%% perplexity; default: 0.5)")
    p.add_argument("--sentence-tokens", dest="max_tokens", type=int, default=128,
                   help="tokens per sentence, specials included; longer ones are truncated (default: 128)")
    p.add_argument("--sentences", type=int, default=None, help="measure on the first N sentences only")
    p.add_argument("--batch-size", type=int, default=8, help="sentences per forward pass (default: 8)")
    p.add_argument("--model", default=None, help="load this model instead of the one the source names "
                                                 "(e.g. a local copy); it must have the same heads")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random-heads baseline (default: 0)")
    p.add_argument("--json", metavar="OUT", default=None, help="write the report as JSON")
    p.add_argument("--plot", metavar="OUT.png", default=None, help="draw the measure against the fraction replaced")
    flags.deprecated(p, "--max-tokens", "--sentence-tokens", "max_tokens", int)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs the schedule and baselines; prints a summary, writes --json and --plot."""
    from evo import corpus, models, perplexity, replace
    from evo.errors import UserError

    _check(args)
    heads = replace.parse_heads(args.heads) if args.heads is not None else None
    best = replace.load_best(args.source)
    if heads:
        known = {(c.layer, c.head) for c in best.candidates}
        missing = [f"{layer}.{head}" for layer, head in heads if (layer, head) not in known]
        if missing:
            raise UserError(f"no program for head(s) {', '.join(missing)} in {best.origin}")
    split = args.split or ("search" if args.corpus else "perplexity")
    text = corpus.load(args.corpus, split)
    for note in text.warnings:
        print(f"warning: {note}", file=sys.stderr)
    sentences = list(text.sentences[: args.sentences] if args.sentences else text.sentences)
    loaded = models.load(args.model or best.model, device=args.device)
    if (loaded.n_layers, loaded.n_heads) != (best.n_layers, best.n_heads):
        raise UserError(f"{best.origin} has {best.n_layers} layers x {best.n_heads} heads, the model "
                        f"{loaded.name} has {loaded.n_layers} x {loaded.n_heads}")
    settings = perplexity.Settings(max_tokens=args.max_tokens, batch_size=args.batch_size)
    meter = perplexity.Meter(loaded, sentences, settings)
    report = replace.run(meter, best, fraction=args.fraction or 0.25, heads=heads,
                         threshold=args.threshold, seed=args.seed, log=_log)
    report["corpus"] = {"source": text.source, "fingerprint": text.fingerprint}
    print(summary(report))
    if args.json:
        replace.write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        replace.plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0


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
    for flag in ("max_tokens", "batch_size", "sentences"):
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
    return "\n".join(lines)
