"""Running a model over a tokenised text for a measure: batches, real tokens only, runs from a layer.

    runner = forward.Runner(loaded, ids, batch_size=8)
    full = runner.run(record=True)                   # per-sentence NLL sums; layer inputs kept
    part = runner.run(sub, start=5, inputs=full.inputs)  # layers 0-4 skipped, the same result
    many = forward.Runner(loaded, ids * 3, 8, sentence_of=list(range(len(ids))) * 3)
    many.run(sub, start=5, inputs=full.inputs)        # three candidates at once, batched together

Sentences are grouped into batches of similar length and right padded. For decoders the
output head runs only at positions that predict a real token (a pre-hook on the output
embeddings gathers them, so the model's own logit post-processing, e.g. soft-capping,
still applies) and the result is each sentence's summed next-token NLL and its count.
For encoders it is each sentence's mean-pooled last hidden state. A decoder's runner may keep
the likeliest next tokens (`keep_top`) and sum a divergence from them (`against`, evo.divergence).

A run that replaces heads only in layers >= l gives the same hidden states entering
layer l as the unmodified run; `run(start=l, inputs=...)` therefore skips layers before
l (they return at once) and feeds layer l the recorded states. The runner checks once, on
its first batch, that skipping reproduces the full run, and otherwise always runs whole.
Recorded inputs are kept per sentence, so a runner over other rows (the same sentences
repeated, one copy per candidate program) can start from them too (`sentence_of`).
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
from torch import nn

from evo import divergence, substitute


@dataclasses.dataclass(frozen=True)
class Batch:
    indices: list[int]          # sentence indices, longest first
    input_ids: torch.Tensor     # (B, T), right padded
    mask: torch.Tensor          # (B, T), 1 on real tokens
    scored: torch.Tensor        # (B, T-1) bool: positions whose next token counts in the NLL


@dataclasses.dataclass
class Result:
    """What one run measured, per sentence, and (when recorded) the layer inputs per batch."""

    nll: torch.Tensor | None          # (S,) float64 summed next-token NLL (decoders)
    counts: torch.Tensor | None       # (S,) predicted tokens per sentence (decoders)
    pooled: torch.Tensor | None       # (S, D) mean-pooled last hidden state (encoders)
    inputs: dict[int, list[torch.Tensor]] | None = None  # {layer: per row, (n, D) entering it}
    kl: torch.Tensor | None = None    # (S,) float64 summed divergence from `Runner.against` (decoders)
    top: list | None = None           # per row, (token ids (n, k), log-probs (n, k + 1)) when kept

    def rows(self, start: int, stop: int) -> "Result":
        """Returns the result of rows start..stop-1 alone (without recorded inputs)."""
        def cut(t):
            return None if t is None else t[start:stop]
        return Result(cut(self.nll), cut(self.counts), cut(self.pooled), kl=cut(self.kl), top=cut(self.top))


def batches(ids: list[list[int]], batch_size: int, pad: int, scored: list[int] | None = None) -> list[Batch]:
    """Returns right-padded batches of sentences of similar length (longest first).

    `scored[i]`: how many of sentence i's last tokens count in its NLL (None: all but the first).
    """
    order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
    out = []
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        length = max(len(ids[i]) for i in chosen)
        input_ids = torch.full((len(chosen), length), pad, dtype=torch.long)
        mask = torch.zeros((len(chosen), length), dtype=torch.long)
        for b, i in enumerate(chosen):
            input_ids[b, : len(ids[i])] = torch.tensor(ids[i])
            mask[b, : len(ids[i])] = 1
        targets = torch.arange(1, length)[None, :]  # (1, T-1): the position each prediction is for
        lengths = torch.tensor([len(ids[i]) for i in chosen])[:, None]
        counted = lengths - 1 if scored is None else torch.tensor([scored[i] for i in chosen])[:, None]
        out.append(Batch(chosen, input_ids, mask, (targets < lengths) & (targets >= lengths - counted)))
    return out


def decoder_layers(model: nn.Module) -> dict[int, nn.Module]:
    """Returns {layer: the block that holds that layer's self-attention} (an element of a ModuleList)."""
    names = {id(m): name for name, m in model.named_modules()}
    modules = dict(model.named_modules())
    layers = {}
    for layer, attention in substitute.attention_modules(model).items():
        parts = names[id(attention)].split(".")
        for cut in range(len(parts) - 1, 0, -1):
            parent = modules.get(".".join(parts[: cut - 1]))
            if isinstance(parent, nn.ModuleList) and parts[cut - 1].isdigit():
                layers[layer] = modules[".".join(parts[:cut])]
                break
    return layers


class Runner:
    """A model and a tokenised text, batched, ready to be run whole or from a layer."""

    def __init__(self, loaded, ids: list[list[int]], batch_size: int, scored: list[int] | None = None,
                 sentence_of: list[int] | None = None):
        """`sentence_of[row]`: the sentence whose recorded inputs row `row` starts from (default: itself)."""
        self.loaded = loaded
        self.causal = loaded.causal
        self.model = loaded.model
        self.n_rows = len(ids)
        self.sentence_of = list(range(len(ids))) if sentence_of is None else list(sentence_of)
        self.lengths = [len(x) for x in ids]
        self.batches = batches(ids, batch_size, _pad_id(loaded.tokenizer), scored)
        self.layers = decoder_layers(self.model)
        self.can_start_later: bool | None = None if len(self.layers) == loaded.n_layers else False
        self.keep_top = 0       # > 0: keep that many most likely next tokens per position (Result.top)
        self.against: list | None = None  # per sentence, a reference's Result.top: measure Result.kl

    def run(self, sub: substitute.Substitution | None = None, start: int = 0,
            inputs: dict[int, list[torch.Tensor]] | None = None, record: bool = False) -> Result:
        """Returns the measure over every batch; starts at layer `start` from `inputs` where it can.

        `inputs` must have been recorded with the same replacements in layers before `start`.
        """
        if inputs is None or self.can_start_later is False:
            start = 0
        parts, kept = [], []
        for batch in self.batches:
            if sub is not None:
                sub.select(batch.indices, batch.input_ids.shape[1], padding_side="right")
            given = self._assemble(batch, inputs, start) if start else None
            if start and self.can_start_later is None:
                self.can_start_later = self._reproduces(batch, start, given)
                start = start if self.can_start_later else 0
            out, recorded = self._batch(batch, start, given, record)
            parts.append(out)
            kept.append(recorded)
        result = self._collect(parts)
        if record:
            result.inputs = self._inputs(kept, inputs, start)
        return result

    def _assemble(self, batch: Batch, inputs: dict[int, list[torch.Tensor]], layer: int) -> torch.Tensor:
        """Returns the states entering `layer` for the batch's rows, right padded (B, T, D)."""
        pieces = [inputs[layer][self.sentence_of[i]] for i in batch.indices]
        out = pieces[0].new_zeros((len(pieces), batch.input_ids.shape[1], pieces[0].shape[-1]))
        for b, piece in enumerate(pieces):
            out[b, : piece.shape[0]] = piece
        return out

    def _inputs(self, kept: list, inputs, start: int) -> dict[int, list[torch.Tensor]]:
        """Returns {layer: per row (n, D)} from the batches' recordings (layers before `start` from `inputs`)."""
        out: dict[int, list] = {layer: [None] * self.n_rows for layer in self.layers}
        for batch, recorded in zip(self.batches, kept):
            for layer, states in recorded.items():
                for b, i in enumerate(batch.indices):
                    out[layer][i] = (inputs[layer][self.sentence_of[i]] if layer < start
                                     else states[b, : self.lengths[i]])
        return out

    def _reproduces(self, batch: Batch, start: int, given: torch.Tensor) -> bool:
        """Returns whether starting at `start` gives the full run's result on this batch."""
        full, _ = self._batch(batch, 0, None, False)
        try:
            part, _ = self._batch(batch, start, given, False)
        except (TypeError, ValueError, RuntimeError, IndexError, KeyError):  # a block that does not take states
            return False
        return all(torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5) for a, b in zip(full, part)
                   if isinstance(a, torch.Tensor))

    def _batch(self, batch: Batch, start: int, given: torch.Tensor | None, record: bool):
        """Returns (this batch's measure tensors, {layer: input states (B, T, D)} when recording)."""
        device = self.loaded.device
        input_ids, mask = batch.input_ids.to(device), batch.mask.to(device)
        with contextlib.ExitStack() as stack:
            recorded = stack.enter_context(_recording(self.layers)) if record else None
            if start:
                stack.enter_context(_starting_at(self.layers, start, given))
            if self.causal:
                out = self._nll(stack, input_ids, mask, batch.scored.to(device), batch.indices)
            else:
                out = self._pooled(input_ids, mask)
        return out, recorded

    def _nll(self, stack, input_ids, mask, predicting, indices: list[int]) -> tuple:
        """Returns per-sentence summed NLL (B,), predicted-token counts (B,) over `predicting` (B, T-1), summed
        divergence from `against` (B,) or None, and the kept top tokens per row or None."""
        head = self.model.get_output_embeddings()
        stack.enter_context(_gathering(head, predicting))
        with torch.no_grad():
            logits = self.model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits[0]  # (N, V)
        targets = input_ids[:, 1:][predicting]  # (N,)
        logp = nn.functional.log_softmax(logits.float(), dim=-1)
        nll = -logp.gather(1, targets[:, None])[:, 0]
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None].expand_as(predicting)[predicting]
        per_row = lambda x: torch.zeros(input_ids.shape[0], dtype=torch.float64,  # noqa: E731
                                        device=x.device).index_add_(0, rows, x.double()).cpu()
        counts = predicting.sum(dim=1).cpu()
        kl = top = None
        if self.against is not None:
            ids, ref = (torch.cat([self.against[self.sentence_of[i]][part] for i in indices]).to(logp.device)
                        for part in (0, 1))
            kl = per_row(divergence.kl(ref, divergence.bucketed(logp, ids)))
        if self.keep_top:
            ids = logp.topk(min(self.keep_top, logp.shape[-1]), dim=-1).indices
            top = list(zip(ids.cpu().split(counts.tolist()), divergence.bucketed(logp, ids).cpu().split(counts.tolist())))
        return per_row(nll), counts, kl, top

    def _pooled(self, input_ids, mask) -> tuple[torch.Tensor]:
        """Returns the batch's mean-pooled last hidden states (B, D)."""
        with torch.no_grad():
            out = self.model(input_ids=input_ids, attention_mask=mask)
        hidden = _hidden(out)
        weights = mask[:, :, None].to(hidden.dtype)
        return ((hidden * weights).sum(dim=1).float() / weights.sum(dim=1).float().clamp(min=1)).cpu(),

    def _collect(self, parts) -> Result:
        """Returns the per-row result in row order."""
        order = torch.tensor([i for batch in self.batches for i in batch.indices])
        if self.causal:
            nll, counts = torch.zeros(self.n_rows, dtype=torch.float64), torch.zeros(self.n_rows)
            nll[order] = torch.cat([p[0] for p in parts])
            counts[order] = torch.cat([p[1] for p in parts]).to(counts.dtype)
            kl = top = None
            if all(p[2] is not None for p in parts):
                kl = torch.zeros(self.n_rows, dtype=torch.float64)
                kl[order] = torch.cat([p[2] for p in parts])
            if all(p[3] is not None for p in parts):
                by_row = dict(zip(order.tolist(), [k for p in parts for k in p[3]]))
                top = [by_row[i] for i in range(self.n_rows)]
            return Result(nll, counts, None, kl=kl, top=top)
        pooled = torch.cat([p[0] for p in parts])
        result = torch.empty_like(pooled)
        result[order] = pooled
        return Result(None, None, result)


@contextlib.contextmanager
def _gathering(head: nn.Module, predicting: torch.Tensor):
    """Makes the output head see only the positions in `predicting`, as one (1, N, D) row."""

    def pre(module, args):
        hidden = args[0][:, : predicting.shape[1]]  # (B, T-1, D): the last position predicts nothing
        return (hidden[predicting][None],) + tuple(args[1:])

    handle = head.register_forward_pre_hook(pre)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def _recording(layers: dict[int, nn.Module]):
    """Yields {layer: hidden states entering it}, filled as the model runs."""
    seen: dict[int, torch.Tensor] = {}
    handles = []
    for layer, module in layers.items():
        def pre(module, args, kwargs, layer=layer):
            states = args[0] if args else kwargs["hidden_states"]
            seen[layer] = states.detach()
        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _starting_at(layers: dict[int, nn.Module], start: int, state: torch.Tensor):
    """Makes layers before `start` return at once, the last of them with `state`, the states entering `start`."""
    originals = {}
    for layer in range(start):
        module = layers[layer]
        originals[layer] = module.__dict__.get("forward")
        last = layer == start - 1
        module.forward = (lambda *a, _s=state, **k: _s) if last else (lambda hidden_states, *a, **k: hidden_states)
    try:
        yield
    finally:
        for layer, original in originals.items():
            if original is None:
                del layers[layer].forward
            else:
                layers[layer].forward = original


def _hidden(out) -> torch.Tensor:
    """Returns the last hidden states (B, T, D) of an encoder's output."""
    if getattr(out, "last_hidden_state", None) is not None:
        return out.last_hidden_state
    if getattr(out, "hidden_states", None):
        return out.hidden_states[-1]
    raise ValueError("the encoder's output has no last_hidden_state; load it as a base model (AutoModel)")


def _pad_id(tokenizer) -> int:
    """Returns the id used for padding (pad, else eos, else 0); padded positions are masked anyway."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0
