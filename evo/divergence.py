"""How far a modified model's next-token distributions are from the unmodified model's.

Perplexity on a short text is a noisy measure of what replacing one head costs: each
position scores one sampled token, so two heads' costs on 64 sentences can differ by
their noise alone, and a schedule that takes the cheapest of 270 heads takes the ones
whose noise was lowest. The divergence from the unmodified model scores, at every
position, the whole distribution the model predicts: KL(unmodified || modified) is never
negative, and its spread over sentences is a fraction of the perplexity change's.

To keep memory independent of the vocabulary, a reference position keeps its `k` most
likely tokens and one bucket for all the others; KL over those k + 1 outcomes is a lower
bound of the full KL (merging outcomes never increases a divergence) and equals it as
the bucket's mass goes to zero.
"""

from __future__ import annotations

import torch

TOP = 64  # tokens kept per reference position


def bucketed(logp: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Returns the log-probabilities (N, k + 1) of tokens `ids` (N, k) and of one bucket for all others."""
    kept = logp.gather(1, ids)
    rest = torch.log((1.0 - kept.double().exp().sum(dim=-1)).clamp(min=1e-12)).to(kept.dtype)
    return torch.cat([kept, rest[:, None]], dim=-1)


def kl(reference: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Returns KL(reference || other) per row (N,) of bucketed log-probabilities (N, k + 1), never negative."""
    p = reference.double().exp()
    return (p * (reference.double() - other.double())).sum(dim=-1).clamp(min=0.0)


def reference(runner):
    """Returns the runner's unmodified run (recorded, evo.forward.Result) keeping its TOP likeliest next tokens
    per position, and makes the runner's later runs measure their divergence from it (`Result.kl`)."""
    runner.keep_top = TOP
    try:
        result = runner.run(record=True)
    finally:
        runner.keep_top = 0
    runner.against = result.top
    result.kl = torch.zeros_like(result.nll)
    return result
