"""Capture throughput against a plain `model(..., output_attentions=True)` loop.

Prints the model load time (cached copy), then tokens/s over the same sentences of: a plain
one-sentence-at-a-time loop of the full model with output_attentions (tokenise, forward,
nothing stored), the same loop over the model body (no LM head, which capture skips),
and `evo.capture.capture` (tokenise, forward, float16 conversion, streamed write, token
rendering) at batch 1 and at --batch-size, each with its time ratio to the full-model
loop. Capture's own overhead is capture at batch 1 against the body loop. Each is timed `--repeats`
times, interleaved, and the best run counts (the machine may be shared).

    python bench/capture.py [--model gemma-3-270m] [--sentences 64] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import torch

from evo import capture, corpus, models


def plain_loop(loaded, sentences, max_tokens: int, body_only: bool = False) -> int:
    """Runs the baseline loop (full model, or its body without the LM head); returns the tokens processed."""
    total = 0
    module = loaded.model.base_model if body_only else loaded.model
    with torch.inference_mode():
        for text in sentences:
            enc = loaded.tokenizer(text, return_tensors="pt", truncation=True, max_length=max_tokens)
            out = module(**enc.to(loaded.device), output_attentions=True)
            assert len(out.attentions) == loaded.n_layers
            total += enc["input_ids"].shape[1]
    return total


def timed(fn) -> tuple[float, object]:
    """Returns (seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=models.DEFAULT_MODEL)
    parser.add_argument("--split", default="search")
    parser.add_argument("--sentences", type=int, default=64, help="first N sentences of the split")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    load_s, loaded = timed(lambda: models.load(args.model, device=args.device))
    print(f"model {args.model}: {loaded.n_layers} x {loaded.n_heads} heads, loaded in {load_s:.2f} s "
          f"(cached copy; torch threads {torch.get_num_threads()})")
    full = corpus.load(None, args.split)
    sentences = full.sentences[:args.sentences]
    small = corpus.Corpus(sentences=sentences, source=f"{full.source}[:{len(sentences)}]",
                          fingerprint=corpus.fingerprint(sentences))
    plain_loop(loaded, sentences[:2], args.max_tokens)  # warm-up
    runs = {
        "plain loop, full model (batch 1)": lambda r: plain_loop(loaded, sentences, args.max_tokens),
        "plain loop, model body (batch 1)": lambda r: plain_loop(loaded, sentences, args.max_tokens, True),
        "evo capture (batch 1, to disk)": lambda r: capture.capture(
            loaded, small, pathlib.Path(tmp) / f"one{r}", max_tokens=args.max_tokens, batch_size=1),
        f"evo capture (batch {args.batch_size}, to disk)": lambda r: capture.capture(
            loaded, small, pathlib.Path(tmp) / f"many{r}", max_tokens=args.max_tokens, batch_size=args.batch_size),
    }
    best = {name: float("inf") for name in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name, run in runs.items():
                seconds, result = timed(lambda: run(r))
                best[name] = min(best[name], seconds)
                if isinstance(result, int):
                    tokens = result
                else:
                    assert sum(len(t) for t in result.tokens) == tokens
                    size_mb = (result.path / "attention.safetensors").stat().st_size / 1e6
    print(f"{len(sentences)} sentences, {tokens} tokens, max {args.max_tokens} tokens, best of {args.repeats}, "
          f"{size_mb:.1f} MB written per capture")
    base = best["plain loop, full model (batch 1)"]
    for name, seconds in best.items():
        print(f"{name:36s} {tokens / seconds:8.1f} tokens/s  {seconds:7.2f} s  time ratio {seconds / base:.3f}")
    one, body = best["evo capture (batch 1, to disk)"], best["plain loop, model body (batch 1)"]
    print(f"capture overhead at equal batch (capture batch 1 / body loop): {one / body:.3f} "
          f"({100 * (one / body - 1):+.1f} %; target <= +10 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
