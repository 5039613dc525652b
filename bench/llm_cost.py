"""What LLM variation costs: tokens per call and per 500-program run, and what that is in USD.

Runs the real LLM operator (prompt building, sandboxed parent runs, the openai client over
HTTP) against the scripted loopback server, whose usage counts words and punctuation marks.
The attention set is synthetic but shaped like the default model's: 18 x 4 heads, built-in
corpus sentences rendered as word-level tokens with a <bos>, diffuse heads mixing a sink,
the previous token, self and a uniform prefix. Parents are the seed programs.

    python bench/llm_cost.py [--requests 500] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evo import attention_set, corpus  # noqa: E402
from operators import base  # noqa: E402
from operators.llm import budget, operator as llm
from tests.llm_server import Reply, ScriptedServer  # noqa: E402

N_LAYERS, N_HEADS = 18, 4


def tokens_of(sentence: str, limit: int = 64) -> list[str]:
    """Returns word-level readable tokens with leading spaces, after a <bos>."""
    return (["<bos>"] + re.findall(r" ?\w+| ?[^\w\s]", sentence))[:limit]


def heads_for(n: int, rng: np.random.Generator) -> np.ndarray:
    """Returns (K, n, n) causal heads, each a random mixture of four basic patterns plus noise."""
    prev = np.eye(n, k=-1)
    prev[0, 0] = 1
    sink = np.zeros((n, n))
    sink[:, 0] = 1
    uniform = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]
    basis = np.stack([sink, prev, np.eye(n), uniform])
    out = []
    for _ in range(N_LAYERS * N_HEADS):
        w = rng.dirichlet(np.full(4, 0.4))
        m = np.tensordot(w, basis, 1) + np.tril(rng.random((n, n))) * 0.05
        out.append(m / m.sum(axis=1, keepdims=True))
    return np.stack(out)


def build_set(folder: pathlib.Path, n_sentences: int, rng) -> attention_set.AttentionSet:
    sentences = corpus.load(None, "search").sentences[:n_sentences]
    toks = [tokens_of(s) for s in sentences]
    meta = {"model": "bench-synthetic", "causal": True, "n_layers": N_LAYERS, "n_heads": N_HEADS,
            "corpus": {"source": "builtin:search", "fingerprint": "0" * 16}, "max_tokens": 64,
            "dtype": "float16", "tokens": toks, "sentences": list(sentences)}
    return attention_set.write(folder / "set", meta, [heads_for(len(t), rng) for t in toks])


def scripted_reply(body: dict, seeds: list[str]) -> Reply:
    """Returns a realistic reply: a few sentences of reasoning, then an edit or a whole program."""
    prompt = body["messages"][-1]["content"]
    program = seeds[body["seed"] % len(seeds)]
    reasoning = ("The head mostly attends to the previous token, with a share of its weight on the "
                 "first token acting as a sink; the current program misses the rows after punctuation. "
                 "I will keep the previous-token rule and add a sink weight that grows with distance.\n\n")
    if "<<<<<<< SEARCH" in prompt:
        line = next(l for l in prompt.split("```python\n")[1].splitlines() if l.strip().startswith("return"))
        return Reply(reasoning + f"<<<<<<< SEARCH\n{line}\n=======\n{line}  # unchanged\n>>>>>>> REPLACE\n")
    return Reply(reasoning + f"```python\n{program}```\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--sentences", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    seeds = [p.read_text() for p in sorted((ROOT / "seeds").glob("*.py"))]
    with tempfile.TemporaryDirectory() as tmp:
        aset = build_set(pathlib.Path(tmp), args.sentences, rng)
        k_total = N_LAYERS * N_HEADS
        parents = [base.Parent(f"s{i}", s, rng.random(k_total), 40) for i, s in enumerate(seeds)]
        requests = []
        for seed in range(args.requests):
            pick = rng.choice(len(parents), 2, replace=False)
            heads = tuple(int(h) for h in rng.choice(k_total, 3, replace=False))
            if rng.random() < 0.4:
                requests.append(base.Request("crossover", (parents[pick[0]], parents[pick[1]]), heads, seed))
            else:
                requests.append(base.Request("mutate", (parents[pick[0]],), heads, seed))
        with ScriptedServer(lambda body: scripted_reply(body, seeds)) as server:
            op = llm.LLMOperator(llm.LLMSettings(model="gpt-4.1-mini", base_url=server.base_url,
                                                 concurrency=args.concurrency, run_dir=tmp),
                                 aset.path, key="bench")
            start = time.perf_counter()
            children = op.vary(requests)
            seconds = time.perf_counter() - start
        used = server.total_usage()
    counts = op.ledger.snapshot()
    assert counts["prompt_tokens"] == used["prompt_tokens"], "ledger disagrees with the server"
    ok = sum(c.source is not None for c in children)
    calls = counts["calls"]
    print(f"{calls} calls ({ok} programs) in {seconds:.1f} s with concurrency {args.concurrency}: "
          f"{seconds / calls * 1000:.0f} ms per call of local overhead (prompt building, parent runs, HTTP)")
    print(f"prompt tokens per call:     {counts['prompt_tokens'] / calls:8.0f}")
    print(f"completion tokens per call: {counts['completion_tokens'] / calls:8.0f}")
    scale = 500 / calls
    p500, c500 = counts["prompt_tokens"] * scale, counts["completion_tokens"] * scale
    print(f"per 500 LLM-made programs: {p500 / 1e6:.2f} M prompt + {c500 / 1e6:.2f} M completion tokens")
    real_completion = 600 * 500   # estimate: a real model's reasoning plus a ~40-line program
    print(f"estimate with {real_completion // 500} completion tokens per call (a real model reasons before the code):")
    for model in ("gpt-4.1-nano", "gpt-4.1-mini", "gpt-5-mini", "gpt-4.1"):
        pin, pout = budget.PRICES[model]
        print(f"  {model:13s} ${pin:.2f}/${pout:.2f} per 1M: measured ${(p500 * pin + c500 * pout) / 1e6:6.2f}"
              f"  estimated ${(p500 * pin + real_completion * pout) / 1e6:6.2f} per 500 programs")

if __name__ == "__main__":
    main()
