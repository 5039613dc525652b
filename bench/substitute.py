"""Forward-pass time with substituted heads against plain eager attention, on the same batch.

Compares, for one padded batch of the model's own tokens:
  eager          the model as loaded (attn_implementation="eager")
  substitute 0   inside `substitute.heads(model, {})`: our attention function, nothing replaced
  substitute K   K heads replaced by precomputed per-sentence matrices (`substitute.Matrices`)

Run: python bench/substitute.py [--model gemma-3-270m] [--batch 8] [--tokens 64] [--heads 18] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from evo import models, substitute


def _batch(loaded, batch: int, tokens: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (input_ids, attention_mask) of random ordinary tokens, right-padded, first sentence full length."""
    vocab = len(loaded.tokenizer)
    lengths = [tokens] + list(rng.integers(tokens // 2, tokens + 1, batch - 1))
    ids = torch.full((batch, tokens), loaded.tokenizer.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros((batch, tokens), dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.as_tensor(rng.integers(1000, min(vocab, 50_000), n))
        mask[b, :n] = 1
    return ids.to(loaded.device), mask.to(loaded.device)


def _time(loaded, ids, mask, repeats: int, select=None) -> float:
    """Returns the median seconds of one forward pass (after one warm-up pass)."""
    times = []
    for i in range(repeats + 1):
        if select is not None:
            select()
        start = time.perf_counter()
        with torch.no_grad():
            loaded.model(input_ids=ids, attention_mask=mask, use_cache=False)
        if loaded.device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=models.DEFAULT_MODEL)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--heads", type=int, default=18, help="heads to replace (default 18 = 25%% of gemma-3-270m)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    loaded = models.load(args.model, device=args.device)
    ids, mask = _batch(loaded, args.batch, args.tokens, rng)
    lengths = mask.sum(dim=1).tolist()
    all_heads = [(l, h) for l in range(loaded.n_layers) for h in range(loaded.n_heads)]
    chosen = [all_heads[i] for i in rng.choice(len(all_heads), min(args.heads, len(all_heads)), replace=False)]
    matrices = {head: substitute.Matrices([np.tril(rng.random((n, n))) for n in lengths]) for head in chosen}

    eager = _time(loaded, ids, mask, args.repeats)
    with substitute.heads(loaded.model, {}):
        nothing = _time(loaded, ids, mask, args.repeats)
    with substitute.heads(loaded.model, matrices) as sub:
        replaced = _time(loaded, ids, mask, args.repeats,
                         select=lambda: sub.select(list(range(args.batch)), args.tokens, "right"))
    print(f"model {loaded.name} on {loaded.device}, batch {args.batch} x {args.tokens} tokens, "
          f"median of {args.repeats} forward passes")
    print(f"  eager                    {eager * 1000:8.1f} ms   1.00x")
    print(f"  substitute, none         {nothing * 1000:8.1f} ms   {nothing / eager:.2f}x")
    print(f"  substitute, {len(chosen):3d} heads    {replaced * 1000:8.1f} ms   {replaced / eager:.2f}x")


if __name__ == "__main__":
    main()
