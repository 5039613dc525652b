"""`evo search` and `evo resume`: run and continue a program search."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import pathlib
import signal
import sys

from evo import models, parallel, run, runlock
from evo.commands import flags, search_inputs as inputs
from evo.errors import UserError

EXIT_INTERRUPTED = 130
DEFAULT_MODEL = models.DEFAULT_MODEL


def register(sub) -> None:
    """Adds the search and resume subcommands."""
    p = sub.add_parser("search", help="evolve programs that explain every attention head",
                       description="Evolve short programs explaining a model's attention heads.")
    p.add_argument("--model", default=DEFAULT_MODEL, help="preset, hub id or local path")
    p.add_argument("--corpus", default=None, help=".txt or .jsonl corpus (default: built-in)")
    p.add_argument("--split", default="search", help="built-in corpus split (default: search)")
    p.add_argument("--sentence-tokens", type=int, default=64, help="tokens per sentence at most")
    p.add_argument("--attention-set", default=None,
                   help="score against this stored attention set instead of capturing one")
    p.add_argument("--run-dir", default=None, help="default: runs/<model>-<timestamp>")
    _budget_flags(p, max_programs=500)
    p.add_argument("--workers", type=int, default=2,
                   help="worker processes: they evaluate programs and make the offline operator's children")
    flags.backend(p)
    p.add_argument("--device", default="cpu", help="torch device for the capture, e.g. cuda (default: cpu)")
    p.add_argument("--seed", type=int, default=7, help="seed of every random choice: same seed, same run")
    p.add_argument("--seeds-dir", default=None, help="starting programs (default: seeds/)")
    p.add_argument("--from-export", default=None, help="also start from a previous export's programs")
    p.add_argument("--operators", default="offline", choices=("offline", "llm", "mixed"),
                   help="who varies programs: offline symbolic edits, an LLM, or both")
    p.add_argument("--requests-per-generation", dest="batch_size", type=int, default=None,
                   help="children asked for per generation (default: 24)")
    flags.deprecated(p, "--batch-size", "--requests-per-generation", "batch_size", int)
    p.add_argument("--population", type=int, default=None, help="NSGA-II selection size per head (default: 8)")
    p.add_argument("--time-limit", type=float, default=2.0, help="seconds per program per sentence")
    p.add_argument("--downstream-sentences", type=int, default=0,
                   help="add the perplexity cost of replacing a head as a third objective, measured on "
                        "this many sentences of the validation split for programs near a front (default 0: off)")
    p.add_argument("--downstream-pairs", dest="cascade_pairs", type=int, default=None,
                   help="(program, head) costs measured per generation at most, every head's best first "
                        "(default: 2, what keeps a CPU search within twice its time; raise it on a GPU)")
    p.add_argument("--vocabulary", choices=("auto", "base", "linguistic"), default="auto",
                   help="score terms and helpers the offline operators may use: linguistic (spaCy) ones "
                        "whenever the extra is installed (auto), never (base), or required (default: auto)")
    _registry_flags(p)
    p.set_defaults(func=run_search)

    r = sub.add_parser("resume", help="continue a stopped search",
                       description="Continue a search from its checkpoint. With no budget flags "
                                   "it continues to the run's budget.")
    r.add_argument("run", help="the run directory")
    _budget_flags(r, max_programs=None)
    r.add_argument("--workers", type=int, default=None, help="worker processes (default: the run's)")
    flags.backend(r, default=None)
    r.add_argument("--device", default="cpu", help="torch device should the set be captured again, e.g. cuda")
    r.set_defaults(func=run_resume)


def _budget_flags(p, max_programs) -> None:
    p.add_argument("--max-programs", type=int, default=max_programs, help="unique programs evaluated")
    p.add_argument("--generations", type=int, default=None, help="generations after the seeds")
    p.add_argument("--max-hours", type=float, default=None, help="wall-clock hours over all sessions")


def _registry_flags(p) -> None:
    from operators import registry

    hook = getattr(registry, "add_arguments", None)
    if hook:
        hook(p)


# ---- search ---------------------------------------------------------------------------


def run_search(args) -> int:
    """Starts a new run; returns the exit status."""
    from evo import search

    _check_positive(args, "sentence_tokens", "workers", "max_programs", "generations", "batch_size",
                    "population")
    _check_positive(args, "max_hours", "time_limit", number=float)
    if args.cascade_pairs is not None and args.cascade_pairs < 1:
        raise UserError(f"--downstream-pairs must be at least 1, got {args.cascade_pairs}")
    if args.downstream_sentences < 0:
        raise UserError(f"--downstream-sentences must be 0 (off) or positive, got {args.downstream_sentences}")
    if args.downstream_sentences and args.attention_set:
        raise UserError("--downstream-sentences needs the model: use --model, not --attention-set")
    run_dir = pathlib.Path(args.run_dir or f"runs/{inputs.slug(args.model)}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    if args.attention_set and args.model != DEFAULT_MODEL:
        raise UserError("give --model or --attention-set, not both: the set fixes the model")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run-dir {run_dir} exists and is not a directory; choose another --run-dir")
    live = runlock.holder(run_dir) if run_dir.is_dir() else None
    if live is not None:   # a live run's directory: one line naming its owner, nothing touched
        raise UserError(f"{run_dir} is in use by {runlock.describe(live)}; wait for it to finish or stop it first")
    if (run_dir / run.CHECKPOINT).exists():
        raise UserError(f"{run_dir} already holds a run; continue it with `evo resume {run_dir}` "
                        "or choose another --run-dir")
    programs = inputs.starting_programs(args.seeds_dir, args.from_export)
    aset = inputs.attention_set(args)
    model = aset.model if args.attention_set else args.model
    run_dir.mkdir(parents=True, exist_ok=True)
    with runlock.owned(run_dir):
        if (run_dir / run.CHECKPOINT).exists():
            raise UserError(f"{run_dir} already holds a run; continue it with `evo resume {run_dir}`")
        return _start(run_dir, args, aset, model, programs)


def _start(run_dir, args, aset, model, programs) -> int:
    """Writes a new run's config and empty log, then runs it (the run directory's lock held)."""
    from evo import search

    (run_dir / run.LOG).write_text("")
    settings = search.Settings(**{k: v for k, v in (("batch_size", args.batch_size), ("population", args.population),
                                                    ("cascade_pairs", args.cascade_pairs)) if v})
    budget = search.Budget(args.max_programs, args.generations, args.max_hours)
    config = run.RunConfig(
        model=model, corpus=inputs.absolute(args.corpus), split=args.split, sentence_tokens=args.sentence_tokens,
        attention_set=run.aset_info(aset), captured=not args.attention_set, seed=args.seed,
        budgets=dataclasses.asdict(budget), settings=dataclasses.asdict(settings),
        operators=inputs.operator_settings(args), downstream_sentences=args.downstream_sentences,
        workers=args.workers, backend=args.backend, time_limit=args.time_limit,
        seeds_dir=str(args.seeds_dir or inputs.DEFAULT_SEEDS),
        from_export=inputs.absolute(args.from_export), vocabulary=run.vocabulary(args.vocabulary, aset),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(), command=tuple(sys.argv))
    run.save_config(run_dir, config)
    pool = parallel.Pool(args.backend, args.workers, args.scheduler)
    return _drive(run_dir, config, budget, pool, programs, device=args.device)


def run_resume(args) -> int:
    """Continues a run from its checkpoint; returns the exit status."""
    from evo import search
    from evo.search import checkpoint

    _check_positive(args, "workers", "max_programs", "generations")
    _check_positive(args, "max_hours", number=float)
    run_dir = pathlib.Path(args.run)
    config = run.load_config(run_dir)
    with runlock.owned(run_dir):
        return _resume(run_dir, args, config)


def _resume(run_dir, args, config) -> int:
    """Continues a run from its checkpoint (the run directory's lock held)."""
    from evo import search
    from evo.search import checkpoint

    state = checkpoint.load(run_dir)
    run.check_resumable(run_dir, config, state)
    run.check_vocabulary(run_dir, config)
    try:
        old = search.Budget(**state["budgets"])
    except TypeError as err:
        raise UserError(f"checkpoint in {run_dir} is corrupt (budgets: {err})") from None
    flags = {"max_programs": args.max_programs, "generations": args.generations, "max_hours": args.max_hours}
    budget = dataclasses.replace(old, **{k: v for k, v in flags.items() if v is not None})
    pool = parallel.Pool(args.backend or config.backend, args.workers or config.workers, args.scheduler)
    return _drive(run_dir, config, budget, pool, None, state, device=args.device)


def _drive(run_dir, config, budget, pool, programs=None, state=None, device: str = "cpu") -> int:
    """Builds the engine for a run, seeds or restores it, runs it on `pool`'s workers; returns the exit status."""
    aset = run.attention_set(config, device)
    with pool:
        return _run_engine(run_dir, config, budget, pool, aset, programs, state, device)


def _run_engine(run_dir, config, budget, pool, aset, programs, state, device) -> int:
    import numpy as np

    from evo import evaluate, sandbox, search
    from evo.search import progress
    from operators import finish, registry

    evaluator = functools.partial(evaluate.evaluate, aset_path=aset.path,
                                  limits=sandbox.Limits(seconds=config.time_limit), pool=pool)
    operator = registry.build(run.operator_settings(config, run_dir), aset.path, pool)
    downstream = None
    if config.downstream_sentences:
        from evo import perplexity

        downstream = perplexity.HeadCost.build(config.model, sentences=config.downstream_sentences,
                                               corpus_path=config.corpus, device=device)
    with progress.Reporter() as reporter, _signals() as stop:
        operator.report_to(reporter.message)
        engine = search.Search(run_dir, evaluator, operator, n_heads=len(aset.heads),
                               rng=np.random.default_rng(config.seed), attention_set=config.attention_set,
                               settings=inputs.settings(config), budget=budget,
                               downstream=downstream, reporter=reporter)
        if state is None:
            reporter.message(f"evo search: run {run_dir}, {len(programs)} starting programs, "
                             f"{len(aset.heads)} heads, {len(aset)} sentences, operators "
                             f"{config.operators.get('operators', 'offline')}")
            engine.seed(finish.starting(programs, operator.causal))
        else:
            _restore(engine, state, run_dir)
            reporter.message(f"evo resume: run {run_dir} at generation {engine.generation}, "
                             f"{len(engine.archive)} programs evaluated")
        reason = engine.run(stop)
    if reason == search.INTERRUPTED:
        print(f"evo search: interrupted; checkpoint written. Resume with:\n  evo resume {run_dir}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    snap = engine.snapshot()
    made: dict[str, int] = {}
    for r in engine.archive.records:
        family = r.operator.split(".")[0]
        made[family] = made.get(family, 0) + 1
    print(f"evo search: {reason}. {snap.evaluated} programs, mean best-fit IoU {snap.mean_best:.4f}, "
          f"{snap.heads_above}/{snap.n_heads} heads >= 0.8.\n  programs by who made them: "
          + ", ".join(f"{k} {v}" for k, v in sorted(made.items(), key=lambda kv: -kv[1]))
          + (f"\n  rejected before scoring, not counted: {engine.novelty.duplicates} programs that attend exactly "
             "as earlier ones" if engine.novelty.duplicates else "")
          + f"\nExport with:\n  evo export {run_dir} --out {run_dir}/exports/latest")
    return 0


@contextlib.contextmanager
def _signals():
    """Yields `stop()`: true once SIGINT or SIGTERM arrived; a second signal aborts at once."""
    hits = []

    def handler(signum, frame):
        hits.append(signum)
        if len(hits) > 1:
            raise KeyboardInterrupt
        print(f"\nevo search: {signal.Signals(signum).name}: stopping; the generation in flight is dropped and "
              "the last checkpoint stays (again to abort at once)", file=sys.stderr)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(hits)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _restore(engine, state: dict, run_dir) -> None:
    """Loads the checkpoint into the engine; a malformed one is a one-line error."""
    try:
        engine.load_state(state)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise UserError(f"checkpoint in {run_dir} is corrupt ({type(err).__name__}: {err})") from None


def _check_positive(args, *names, number=int) -> None:
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")
