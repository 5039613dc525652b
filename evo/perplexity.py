"""What replacing heads costs: perplexity for decoders, embedding cosine for encoders.

Each sentence is run on its own (special tokens added as the tokenizer does), batched
with right padding that never changes the result; for decoders every next token is
predicted and the negative log-likelihood is token-weighted over the corpus. For
encoders the measure is the mean cosine similarity of mean-pooled sentence embeddings
to the unmodified model's. Program matrices come from the sandbox (untrusted code) and
`fitness.normalise`, cached per (program key, text fingerprint).

`HeadCost` is the search's third objective (the `Downstream` seam): the relative
perplexity increase when one program replaces one head alone.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import math

import numpy as np
import torch

from evo import affinity, divergence, fitness, forward, program, substitute
from evo.errors import UserError

PERPLEXITY, COSINE = "perplexity", "cosine"
DIVERGENCE = "divergence"  # a decoder's costs as KL from the unmodified model (evo.divergence)


class ProgramError(Exception):
    """A program could not produce matrices for the text (failed, timed out, malformed output)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    max_tokens: int = 128      # per sentence, special tokens included; longer sentences are truncated
    batch_size: int = 8        # sentences per forward pass
    cache_programs: int = 64   # program matrix sets kept in memory (least recently used dropped)
    candidates_per_pass: int = 4  # candidate programs for one head run together, rows batched across them


def encode(tokenizer, sentences: list[str], max_tokens: int) -> list[list[int]]:
    """Returns each sentence's token ids, special tokens added as the tokenizer does, truncated."""
    ids = [tokenizer(s, add_special_tokens=True, truncation=True, max_length=max_tokens)["input_ids"]
           for s in sentences]
    return [list(map(int, x)) for x in ids]


def uniform(n: int, causal: bool) -> np.ndarray:
    """Returns uniform attention over the visible tokens, (n, n)."""
    m = np.tril(np.ones((n, n))) if causal else np.ones((n, n))
    return m / m.sum(axis=1, keepdims=True)


class Meter:
    """A model and a tokenised text, ready to measure the model with heads replaced."""

    def __init__(self, loaded, sentences: list[str] | None, settings: Settings = Settings(), limits=None,
                 ids: list[list[int]] | None = None, scored: list[int] | None = None, costs: str | None = None):
        """`ids` (already tokenised, specials included) replaces `sentences`; `scored[i]` counts only
        sentence i's last tokens in its NLL (a task's continuation). `costs="divergence"` (decoders)
        makes `relative` and `alone` measure the divergence from the unmodified model's predictions
        (exp of the mean KL per token, minus 1: the perplexity increase it amounts to) instead of
        the perplexity change on the text's own tokens."""
        if not (sentences or ids):
            raise UserError("no sentences to measure on")
        self.loaded = loaded
        self.settings = settings
        self.limits = limits
        affinity.adopt(loaded)   # programs with the content term read this text off this model, not a second copy
        self.metric = PERPLEXITY if loaded.causal else COSINE
        self.ids = ids if ids is not None else encode(loaded.tokenizer, list(sentences), settings.max_tokens)
        self.scored = scored
        from evo import tokens  # lazy: evo.tokens pulls in tokenizer helpers
        self.tokens = [tokens.render(loaded.tokenizer, x) for x in self.ids]
        self.costs = DIVERGENCE if costs == DIVERGENCE and self.metric == PERPLEXITY else self.metric
        named = loaded.name if self.costs == self.metric else f"{loaded.name}|{self.costs}"
        self.fingerprint = _fingerprint(named, self.tokens)
        self._programs: collections.OrderedDict[str, list[np.ndarray]] = collections.OrderedDict()
        self._runners: dict[int, forward.Runner] = {}

    @property
    def n_tokens(self) -> int:
        """Returns the number of predicted tokens (decoders) or sentences (encoders) measured."""
        if self.metric == COSINE:
            return len(self.ids)
        if self.scored is not None:
            return sum(self.scored)
        return sum(max(len(x) - 1, 0) for x in self.ids)

    def matrices(self, source: str) -> list[np.ndarray]:
        """Returns the program's normalised matrices for every sentence; ProgramError when it fails."""
        key = program.key(source)
        if key in self._programs:
            self._programs.move_to_end(key)
            return self._programs[key]
        result = _run_program(source, self.tokens, self.loaded.causal, self.limits)
        self._programs[key] = result
        while len(self._programs) > self.settings.cache_programs:
            self._programs.popitem(last=False)
        return result

    def uniform_matrices(self) -> list[np.ndarray]:
        """Returns uniform (causal for decoders) attention for every sentence."""
        return [uniform(len(t), self.loaded.causal) for t in self.tokens]

    @functools.cached_property
    def baseline(self) -> float:
        """Returns the measure of the unmodified model (cosine: 1.0 by definition)."""
        return self.value(self.reference)

    @functools.cached_property
    def reference(self) -> forward.Result:
        """Returns the unmodified model's run, with the hidden states entering every layer."""
        if self.costs == DIVERGENCE:
            return divergence.reference(self.runner)
        return self.runner.run(record=True)

    @functools.cached_property
    def runner(self) -> forward.Runner:
        return forward.Runner(self.loaded, self.ids, self.settings.batch_size, self.scored)

    def measure(self, replacements: dict[tuple[int, int], list[np.ndarray]]) -> float:
        """Returns perplexity (decoders) or mean embedding cosine (encoders) with those heads replaced."""
        return self.value(self.run(replacements))

    def run(self, replacements: dict[tuple[int, int], list[np.ndarray]], start: int = 0,
            inputs=None, record: bool = False) -> forward.Result:
        """Returns the run with those heads replaced, from layer `start` on `inputs` (see evo.forward)."""
        providers = {head: substitute.Matrices(m) for head, m in replacements.items()}
        for head, m in providers.items():
            if len(m) != len(self.ids):
                raise ValueError(f"head {head}: {len(m)} matrices for {len(self.ids)} sentences")
        if self.metric == COSINE or self.costs == DIVERGENCE:
            _ = self.reference  # the unmodified model's embeddings or predictions, before substituting
        with substitute.heads(self.loaded.model, providers) as sub:
            return self.runner.run(sub, start=start, inputs=inputs, record=record)

    def alone(self, head: tuple[int, int], candidates: list[list[np.ndarray]]) -> list[tuple[float, float]]:
        """Returns (cost, standard error) of each candidate's matrices replacing `head` alone.

        Every run starts at the head's layer from the unmodified model's recorded states, and
        up to `candidates_per_pass` candidates share each run (their sentences batched together).
        """
        inputs, s, out = self.reference.inputs, len(self.ids), []
        step = max(1, self.settings.candidates_per_pass)
        for first in range(0, len(candidates), step):
            group = candidates[first : first + step]
            flat = [m for matrices in group for m in matrices]
            with substitute.heads(self.loaded.model, {head: substitute.Matrices(flat)}) as sub:
                result = self._runner_for(len(group)).run(sub, start=head[0], inputs=inputs)
            out += [self.relative(result.rows(c * s, (c + 1) * s), self.reference) for c in range(len(group))]
        return out

    def _runner_for(self, copies: int) -> forward.Runner:
        """Returns a runner over `copies` copies of the text (one per candidate), kept for reuse."""
        if copies == 1:
            return self.runner
        if copies not in self._runners:
            n = len(self.ids)
            runner = forward.Runner(self.loaded, self.ids * copies, self.settings.batch_size,
                                    None if self.scored is None else self.scored * copies,
                                    sentence_of=list(range(n)) * copies)
            runner.against = self.reference.top if self.costs == DIVERGENCE else None
            self._runners[copies] = runner
        return self._runners[copies]

    def value(self, result: forward.Result) -> float:
        """Returns perplexity (token-weighted over the text) or mean cosine to the unmodified model."""
        if self.metric == PERPLEXITY:
            count = float(result.counts.sum())
            if count == 0:
                raise UserError("the text has no sentence with two or more tokens to predict")
            return math.exp(float(result.nll.sum()) / count)
        return float(self._cosines(result).mean())

    def relative(self, result: forward.Result, before: forward.Result) -> tuple[float, float]:
        """Returns (relative cost of `result` over `before`, its standard error over sentences).

        Perplexity: exp(mean NLL difference per token) - 1, the paired per-sentence differences
        giving the error (a ratio estimator); divergence costs: the same with each sentence's
        summed KL from the unmodified model in place of its NLL. Cosine: the drop in mean
        cosine to the original.
        """
        if self.metric == PERPLEXITY:
            d = result.kl - before.kl if self.costs == DIVERGENCE else result.nll - before.nll
            return _ratio(d, result.counts.double())
        c, c0 = self._cosines(result), self._cosines(before)
        d = c0 - c
        se = float(d.std(unbiased=True)) / math.sqrt(len(d)) if len(d) > 1 else 0.0
        return float(d.mean()), se

    def cost(self, value: float) -> float:
        """Returns the cost of a measured value: relative perplexity increase, or 1 - cosine."""
        if self.metric == PERPLEXITY:
            return value / self.baseline - 1.0
        return 1.0 - value

    def _cosines(self, result: forward.Result) -> torch.Tensor:
        """Returns each sentence's embedding cosine to the unmodified model's (S,)."""
        return torch.nn.functional.cosine_similarity(result.pooled, self.reference.pooled, dim=-1).double()


def _ratio(d: torch.Tensor, n: torch.Tensor) -> tuple[float, float]:
    """Returns exp(summed per-sentence differences `d` per token) - 1 and its standard error over sentences
    (a ratio estimator over the paired differences; `n`: tokens per sentence)."""
    delta = float(d.sum() / n.sum())
    spread = float(((d - delta * n) ** 2).sum()) / max(len(n) - 1, 1)
    se = math.sqrt(spread * len(n)) / float(n.sum())
    return math.exp(delta) - 1.0, math.exp(delta) * se


def _fingerprint(model_name: str, token_lists: list[list[str]]) -> str:
    """Returns a 16-hex fingerprint of the model name and the rendered tokens."""
    payload = json.dumps([model_name, token_lists], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def _run_program(source: str, token_lists: list[list[str]], causal: bool, limits) -> list[np.ndarray]:
    """Returns the program's normalised (n, n) matrices, run in the sandbox; ProgramError on failure."""
    from evo import sandbox  # lazy: the sandbox starts worker processes

    outcome = sandbox.run(source, token_lists) if limits is None else sandbox.run(source, token_lists, limits)
    if not outcome.ok:
        raise ProgramError(outcome.error or "program failed")
    result = []
    for i, (raw, toks) in enumerate(zip(outcome.matrices, token_lists)):
        try:
            result.append(fitness.normalise(raw, len(toks), causal))
        except ValueError as err:
            raise ProgramError(f"sentence {i}: {err}") from err
    return result


class HeadCost:
    """The search's downstream objective: what one program costs replacing one head alone, with its error.

    Measured on text the final perplexity figure does not use (the built-in validation
    split, or the run's own corpus), from the head's layer on, the candidates asked for one
    head batched together; each (program, head) is measured once.
    """

    def __init__(self, meter: Meter, n_heads: int):
        self.meter = meter
        self.n_heads = n_heads
        self._cache: dict[tuple[str, int], tuple[float, float] | None] = {}

    @classmethod
    def build(cls, model: str, sentences: int = 32, corpus_path: str | None = None, device: str = "cpu",
              settings: Settings = Settings(max_tokens=64), limits=None) -> "HeadCost":
        """Returns a HeadCost on the first `sentences` of the validation split (or of `corpus_path`)."""
        from evo import corpus, models

        if sentences < 1:
            raise UserError(f"the downstream cost needs at least 1 sentence, got {sentences}")
        text = corpus.load(corpus_path, "search" if corpus_path else "validation")
        if device == "cpu":
            import os

            # the workers hold the cores; the background measurement takes its share, not all of them
            torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
        loaded = models.load(model, device=device)
        return cls(Meter(loaded, list(text.sentences[:sentences]), settings, limits), loaded.n_heads)

    def costs(self, items: list[tuple[str, str, int]]) -> list[tuple[float, float] | None]:
        """Returns (cost, standard error) for each (program_id, source, head k); None where the program fails."""
        with program.AST_LOCK:  # runs in the cascade thread beside the operators' parsing
            keys = [(program.key(source), k) for _, source, k in items]
        todo: dict[int, dict[str, list]] = {}
        for (key, k), (_, source, _) in zip(keys, items):
            if (key, k) in self._cache:
                continue
            try:
                matrices = self.meter.matrices(source)
            except ProgramError:
                self._cache[(key, k)] = None
                continue
            todo.setdefault(k, {})[key] = matrices
        for k, programs in todo.items():
            measured = self.meter.alone(divmod(k, self.n_heads), list(programs.values()))
            self._cache.update({(key, k): m for key, m in zip(programs, measured)})
        return [self._cache[key] for key in keys]
