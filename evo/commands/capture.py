"""`evo capture`: record every head's attention on a corpus into a cached attention set."""

from __future__ import annotations

from evo.commands import flags

import argparse
import sys
import time
import warnings

from evo import corpus, models


def register(subparsers) -> None:
    """Adds the `capture` subcommand."""
    parser = subparsers.add_parser(
        "capture", help="record every attention head's matrices on a corpus",
        description="Run a model over a corpus and store every head's attention (float16 safetensors). "
                    "A second call with the same settings reuses the stored set.")
    parser.add_argument("--model", default=models.DEFAULT_MODEL,
                        help=f"preset ({', '.join(models.PRESETS)}), local directory, .gguf file or Hugging Face id "
                             "(default: %(default)s)")
    parser.add_argument("--corpus", metavar="FILE", default=None,
                        help=".txt (one sentence per line) or .jsonl ({\"text\": ...}); default: built-in corpus")
    parser.add_argument("--split", default="search", choices=corpus.SPLITS,
                        help="split of the built-in corpus (default: %(default)s)")
    parser.add_argument("--sentence-tokens", dest="max_tokens", type=int, default=64,
                        help="tokens per sentence, specials included; longer ones are truncated (default: 64)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                        help="model dtype during the forward pass (default: float32)")
    parser.add_argument("--batch-size", type=int, default=8, help="sentences per forward pass (default: 8)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="where to write the set (default: the headcode cache, keyed by the settings)")
    parser.add_argument("--force", action="store_true", help="capture again even if a stored set matches")
    flags.deprecated(parser, "--max-tokens", "--sentence-tokens", "max_tokens", int)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Captures (or reuses) the attention set and prints where it is and a summary."""
    from evo import capture

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # capture's warnings are in the set's meta, printed below
        aset, reused = capture.ensure_status(
            model=args.model, corpus_path=args.corpus, split=args.split, max_tokens=args.max_tokens,
            device=args.device, dtype=args.dtype, batch_size=args.batch_size, out_dir=args.out,
            force=args.force, progress=_progress)
    for note in aset.meta.get("warnings", []):
        print(f"warning: {note}", file=sys.stderr)
    print(summary(aset, reused, time.perf_counter() - start))
    return 0


def _progress(done: int, total: int) -> None:
    """Prints a one-line progress counter to stderr when it is a terminal."""
    if sys.stderr.isatty():
        end = "\n" if done == total else ""
        print(f"\rcapturing: {done}/{total} sentences", end=end, file=sys.stderr, flush=True)


def summary(aset, reused: bool, seconds: float) -> str:
    """Returns the lines `evo capture` prints about a set."""
    stats = aset.meta.get("stats", {})
    tokens = sum(len(t) for t in aset.tokens)
    how = (f"reused the stored set (captured {aset.meta.get('created', '?')}; --force captures again)"
           if reused else f"captured in {stats.get('seconds', seconds):.1f} s "
                          f"({stats.get('tokens_per_second') or 0:.0f} tokens/s)")
    kind = "causal" if aset.causal else "bidirectional"
    corpus = aset.meta.get("corpus", {})
    return "\n".join([
        f"attention set: {aset.path}",
        f"  model:     {aset.model} ({aset.n_layers} layers x {aset.n_heads} heads = "
        f"{aset.n_layers * aset.n_heads} heads, {kind}, {aset.meta.get('dtype')})",
        f"  corpus:    {corpus.get('source')} (fingerprint {corpus.get('fingerprint')})",
        f"  sentences: {len(aset)}, tokens: {tokens}, max tokens: {aset.meta.get('max_tokens')}",
        f"  {how}; {seconds:.1f} s in all",
    ])
