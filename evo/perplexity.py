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

from evo import fitness, program, substitute
from evo.errors import UserError

PERPLEXITY, COSINE = "perplexity", "cosine"


class ProgramError(Exception):
    """A program could not produce matrices for the text (failed, timed out, malformed output)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    max_tokens: int = 128      # per sentence, special tokens included; longer sentences are truncated
    batch_size: int = 8        # sentences per forward pass
    cache_programs: int = 64   # program matrix sets kept in memory (least recently used dropped)


def encode(tokenizer, sentences: list[str], max_tokens: int) -> list[list[int]]:
    """Returns each sentence's token ids, special tokens added as the tokenizer does, truncated."""
    ids = [tokenizer(s, add_special_tokens=True, truncation=True, max_length=max_tokens)["input_ids"]
           for s in sentences]
    return [list(map(int, x)) for x in ids]


def uniform(n: int, causal: bool) -> np.ndarray:
    """Returns uniform attention over the visible tokens, (n, n)."""
    m = np.tril(np.ones((n, n))) if causal else np.ones((n, n))
    return m / m.sum(axis=1, keepdims=True)


def _batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Returns sentence indices grouped into batches of similar length (longest first)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class Meter:
    """A model and a tokenised text, ready to measure the model with heads replaced."""

    def __init__(self, loaded, sentences: list[str], settings: Settings = Settings(), limits=None):
        if not sentences:
            raise UserError("no sentences to measure on")
        self.loaded = loaded
        self.settings = settings
        self.limits = limits
        self.metric = PERPLEXITY if loaded.causal else COSINE
        self.ids = encode(loaded.tokenizer, list(sentences), settings.max_tokens)
        from evo import tokens  # lazy: evo.tokens pulls in tokenizer helpers
        self.tokens = [tokens.render(loaded.tokenizer, x) for x in self.ids]
        self.fingerprint = _fingerprint(loaded.name, self.tokens)
        self._programs: collections.OrderedDict[str, list[np.ndarray]] = collections.OrderedDict()

    @property
    def n_tokens(self) -> int:
        """Returns the number of predicted tokens (decoders) or sentences (encoders) measured."""
        if self.metric == COSINE:
            return len(self.ids)
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
        return self.measure({})

    def measure(self, replacements: dict[tuple[int, int], list[np.ndarray]]) -> float:
        """Returns perplexity (decoders) or mean embedding cosine (encoders) with those heads replaced."""
        providers = {head: substitute.Matrices(m) for head, m in replacements.items()}
        for head, m in providers.items():
            if len(m) != len(self.ids):
                raise ValueError(f"head {head}: {len(m)} matrices for {len(self.ids)} sentences")
        if self.metric == COSINE:
            _ = self._reference  # the unmodified model's embeddings, computed before substituting
        with substitute.heads(self.loaded.model, providers) as sub:
            if self.metric == PERPLEXITY:
                return self._perplexity(sub)
            return self._cosine(sub)

    def cost(self, value: float) -> float:
        """Returns the cost of a measured value: relative perplexity increase, or 1 - cosine."""
        if self.metric == PERPLEXITY:
            return value / self.baseline - 1.0
        return 1.0 - value

    def _forward(self, batch: list[int], sub=None):
        """Returns the model output and padded inputs for one right-padded batch."""
        length = max(len(self.ids[i]) for i in batch)
        pad = _pad_id(self.loaded.tokenizer)
        input_ids = torch.full((len(batch), length), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        for b, i in enumerate(batch):
            input_ids[b, : len(self.ids[i])] = torch.tensor(self.ids[i])
            mask[b, : len(self.ids[i])] = 1
        if sub is not None:
            sub.select(batch, length, padding_side="right")
        device = self.loaded.device
        with torch.no_grad():
            kwargs = {"use_cache": False} if self.metric == PERPLEXITY else {}
            out = self.loaded.model(input_ids=input_ids.to(device), attention_mask=mask.to(device), **kwargs)
        return out, input_ids.to(device), mask.to(device)

    def _perplexity(self, sub) -> float:
        """Returns exp of the token-weighted mean next-token NLL over the text."""
        total, count = 0.0, 0
        for batch in _batches([len(x) for x in self.ids], self.settings.batch_size):
            out, input_ids, mask = self._forward(batch, sub)
            logits = out.logits[:, :-1].float()  # (B, T-1, V)
            targets = input_ids[:, 1:]  # (B, T-1)
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
            real = mask[:, 1:].bool()
            total += float(nll[real].double().sum())
            count += int(real.sum())
        if count == 0:
            raise UserError("the text has no sentence with two or more tokens to predict")
        return math.exp(total / count)

    def _cosine(self, sub) -> float:
        """Returns the mean cosine of mean-pooled sentence embeddings to the unmodified model's."""
        cosines = []
        for b, batch in enumerate(_batches([len(x) for x in self.ids], self.settings.batch_size)):
            out, _, mask = self._forward(batch, sub)
            pooled = _mean_pool(_hidden(out), mask)  # (B, D)
            cosines.append(torch.nn.functional.cosine_similarity(pooled, self._reference[b], dim=-1))
        return float(torch.cat(cosines).double().mean())

    @functools.cached_property
    def _reference(self) -> list[torch.Tensor]:
        """Returns the unmodified model's pooled embeddings, one (B, D) tensor per batch."""
        reference = []
        for batch in _batches([len(x) for x in self.ids], self.settings.batch_size):
            out, _, mask = self._forward(batch)
            reference.append(_mean_pool(_hidden(out), mask))
        return reference


def _hidden(out) -> torch.Tensor:
    """Returns the last hidden states (B, T, D) of an encoder's output."""
    if getattr(out, "last_hidden_state", None) is not None:
        return out.last_hidden_state
    if getattr(out, "hidden_states", None):
        return out.hidden_states[-1]
    raise ValueError("the encoder's output has no last_hidden_state; load it as a base model (AutoModel)")


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Returns (B, D) mean of hidden states (B, T, D) over real tokens."""
    weights = mask[:, :, None].to(hidden.dtype)
    return (hidden * weights).sum(dim=1).float() / weights.sum(dim=1).float().clamp(min=1)


def _pad_id(tokenizer) -> int:
    """Returns the id used for padding (pad, else eos, else 0); padded positions are masked anyway."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


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
    """The search's downstream objective: relative perplexity increase of one program replacing one head."""

    def __init__(self, meter: Meter, n_heads: int):
        self.meter = meter
        self.n_heads = n_heads
        self._cache: dict[tuple[str, int], float | None] = {}

    @classmethod
    def build(cls, model: str, sentences: int = 32, corpus_path: str | None = None, device: str = "cpu",
              settings: Settings = Settings(max_tokens=64), limits=None) -> "HeadCost":
        """Returns a HeadCost on the first `sentences` of the perplexity split (or of `corpus_path`)."""
        from evo import corpus, models

        if sentences < 1:
            raise UserError(f"the downstream cost needs at least 1 sentence, got {sentences}")
        text = corpus.load(corpus_path, "search" if corpus_path else "perplexity")
        loaded = models.load(model, device=device)
        return cls(Meter(loaded, list(text.sentences[:sentences]), settings, limits), loaded.n_heads)

    def costs(self, items: list[tuple[str, str, int]]) -> list[float | None]:
        """Returns the relative perplexity increase (encoders: 1 - cosine) for each (program_id, source, head k)."""
        return [self._cost(source, k) for _, source, k in items]

    def _cost(self, source: str, k: int) -> float | None:
        """Returns the cost of `source` replacing head k alone; None when the program fails."""
        with program.AST_LOCK:  # runs in the cascade thread beside the operators' parsing
            key = (program.key(source), k)
        if key not in self._cache:
            try:
                matrices = self.meter.matrices(source)
            except ProgramError:
                self._cache[key] = None
                return None
            head = divmod(k, self.n_heads)
            self._cache[key] = self.meter.cost(self.meter.measure({head: matrices}))
        return self._cache[key]
