"""Scoped head substitution: chosen heads' attention probabilities replaced inside the model.

    with substitute.heads(model, {(3, 1): substitute.Matrices(per_sentence)}) as sub:
        sub.select(batch_indices, seq_len, padding_side="right")
        loss = model(**batch).loss

The replacement goes through transformers' `AttentionInterface`: a custom attention
function, registered under its own name together with `eager_mask` in the
`AttentionMaskInterface` (otherwise the causal mask silently disappears), reimplements
eager attention — scaling, soft-capping, sinks, grouped-query `repeat_kv`, masks
(sliding windows arrive through the mask) — and overwrites the chosen heads'
probabilities (the A in A·V, after softmax and dropout) before A·V. With no head
overridden it reproduces eager attention's result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from typing import Iterator, Protocol

import numpy as np
import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

_NAME_PREFIX = "headcode_substitute"
_counter = itertools.count()


class Provider(Protocol):
    """A head's replacement: probabilities for the batch being run."""

    def probabilities(self, batch: int, q_len: int, k_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (values (B, q, k), rows (B, q) bool: the query rows to overwrite)."""


@dataclasses.dataclass
class Fixed:
    """A replacement given directly as a (B, n, n) tensor (or (n, n), broadcast over the batch)."""

    values: torch.Tensor

    def probabilities(self, batch: int, q_len: int, k_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the fixed values and all rows, after checking the shape."""
        values = self.values if self.values.dim() == 3 else self.values.expand(batch, -1, -1)
        if tuple(values.shape) != (batch, q_len, k_len):
            raise ValueError(
                f"replacement has shape {tuple(values.shape)}, the batch needs {(batch, q_len, k_len)}"
            )
        return values, torch.ones(batch, q_len, dtype=torch.bool, device=values.device)


class Matrices:
    """Per-sentence (n_i, n_i) matrices, served padded for the batch the caller selected."""

    def __init__(self, per_sentence: list[np.ndarray]):
        for i, m in enumerate(per_sentence):
            if m.ndim != 2 or m.shape[0] != m.shape[1]:
                raise ValueError(f"sentence {i}: matrix has shape {m.shape}, expected (n, n)")
        self.per_sentence = [torch.as_tensor(np.asarray(m, dtype=np.float32)) for m in per_sentence]
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.per_sentence)

    def select(self, indices: list[int], length: int, padding_side: str = "right") -> None:
        """Pads the chosen sentences' matrices to `length` on `padding_side` for the next forward pass."""
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', not {padding_side!r}")
        values = torch.zeros(len(indices), length, length)  # (B, T, T)
        rows = torch.zeros(len(indices), length, dtype=torch.bool)  # (B, T)
        for b, i in enumerate(indices):
            m = self.per_sentence[i]
            n = m.shape[0]
            if n > length:
                raise ValueError(f"sentence {i} has {n} tokens, longer than the batch's {length}")
            start = 0 if padding_side == "right" else length - n
            values[b, start : start + n, start : start + n] = m
            rows[b, start : start + n] = True
        self._batch = (values, rows)

    def probabilities(self, batch: int, q_len: int, k_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the selected batch's padded matrices and the rows that belong to real tokens."""
        if self._batch is None:
            raise RuntimeError("Matrices.select(indices, length) must be called before each forward pass")
        values, rows = self._batch
        if tuple(values.shape) != (batch, q_len, k_len):
            raise ValueError(
                f"selected matrices have shape {tuple(values.shape)}, the forward pass needs "
                f"{(batch, q_len, k_len)} (select the batch's padded length; no KV cache)"
            )
        return values, rows


class Substitution:
    """The live state of one `heads` context: which provider replaces which head."""

    def __init__(self, layers: dict[int, nn.Module], replacements: dict[tuple[int, int], object]):
        self.layer_of = {id(module): layer for layer, module in layers.items()}
        self.replacements = replacements

    def select(self, indices: list[int], length: int, padding_side: str = "right") -> None:
        """Selects the batch on every `Matrices` replacement in this context."""
        for provider in self.replacements.values():
            if isinstance(provider, Matrices):
                provider.select(indices, length, padding_side)

    def heads_in(self, module: nn.Module) -> dict[int, object]:
        """Returns {head: provider} for the layer that `module` computes."""
        layer = self.layer_of.get(id(module))
        return {h: p for (l, h), p in self.replacements.items() if l == layer}


def repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    """Returns key/value states (B, kv, T, d) repeated to (B, kv * groups, T, d) for grouped queries."""
    if groups == 1:
        return states
    b, kv, t, d = states.shape
    return states[:, :, None, :, :].expand(b, kv, groups, t, d).reshape(b, kv * groups, t, d)


def _attention(substitution: Substitution):
    """Returns an eager attention function that overwrites `substitution`'s heads."""

    def forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None, **kwargs):
        # query (B, H, q, d); key, value (B, kv, k, d)
        if scaling is None:
            scaling = query.size(-1) ** -0.5
        groups = getattr(module, "num_key_value_groups", query.shape[1] // key.shape[1])
        key_states = repeat_kv(key, groups)
        value_states = repeat_kv(value, groups)
        weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling  # (B, H, q, k)
        if softcap is not None:
            weights = torch.tanh(weights / softcap) * softcap
        if attention_mask is not None:
            weights = weights + attention_mask[:, :, :, : key_states.shape[-2]]
        sinks = kwargs.get("s_aux")
        if sinks is not None:
            weights = _softmax_with_sinks(weights, sinks)
        else:
            weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
        weights = nn.functional.dropout(weights, p=dropout, training=module.training).to(value_states.dtype)
        overrides = substitution.heads_in(module)
        if overrides:
            weights = _overwrite(weights, overrides)
        output = torch.matmul(weights, value_states).transpose(1, 2).contiguous()  # (B, q, H, d)
        return output, weights

    return forward


def _softmax_with_sinks(weights: torch.Tensor, sinks: torch.Tensor) -> torch.Tensor:
    """Returns softmax probabilities with a per-head sink logit that takes mass and is dropped."""
    b, h, q, _ = weights.shape
    combined = torch.cat([weights, sinks.reshape(1, -1, 1, 1).expand(b, h, q, 1)], dim=-1)
    combined = combined - combined.max(dim=-1, keepdim=True).values
    return nn.functional.softmax(combined, dim=-1, dtype=combined.dtype)[..., :-1]


def _overwrite(weights: torch.Tensor, overrides: dict[int, object]) -> torch.Tensor:
    """Returns `weights` (B, H, q, k) with the overridden heads' real rows replaced."""
    b, n_heads, q_len, k_len = weights.shape
    weights = weights.clone()
    for head, provider in overrides.items():
        if head >= n_heads:
            raise ValueError(f"head {head} does not exist: the layer has {n_heads} heads")
        values, rows = provider.probabilities(b, q_len, k_len)
        values = values.to(device=weights.device, dtype=weights.dtype)
        rows = rows.to(weights.device)[:, :, None]  # (B, q, 1)
        weights[:, head] = torch.where(rows, values, weights[:, head])
    return weights


def attention_modules(model: nn.Module) -> dict[int, nn.Module]:
    """Returns {layer: self-attention module} in layer order (innermost modules named *Attention)."""
    found = [
        (name, m)
        for name, m in model.named_modules()
        if "attention" in type(m).__name__.lower()
        and not any("attention" in type(c).__name__.lower() for c in m.modules() if c is not m)
    ]
    found = [(name, m) for name, m in found if "cross" not in name.lower() and "cross" not in type(m).__name__.lower()]
    layers = {}
    for i, (name, m) in enumerate(found):
        layer = getattr(m, "layer_idx", None)
        layers[i if layer is None else int(layer)] = m
    n_layers = _n_layers(model)
    if sorted(layers) != list(range(n_layers)):
        raise ValueError(
            f"found attention modules for layers {sorted(layers)}, expected 0..{n_layers - 1}; "
            "substitution supports models whose self-attention goes through AttentionInterface"
        )
    return layers


def _n_layers(model: nn.Module) -> int:
    """Returns the number of transformer layers from the model's config."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.num_hidden_layers)


def _n_heads(model: nn.Module) -> int:
    """Returns the number of query heads per layer from the model's config."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.num_attention_heads)


def _check_heads(model: nn.Module, replacements: dict) -> None:
    """Raises ValueError for (layer, head) keys outside the model."""
    n_layers, n_heads = _n_layers(model), _n_heads(model)
    for key in replacements:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"replacement keys are (layer, head) pairs, got {key!r}")
        layer, head = key
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ValueError(f"head {layer}.{head} does not exist: the model has {n_layers} layers × {n_heads} heads")


def _as_provider(value) -> object:
    """Returns `value` as a provider (tensors and arrays become `Fixed`)."""
    if isinstance(value, np.ndarray):
        value = torch.as_tensor(value)
    if isinstance(value, torch.Tensor):
        return Fixed(value)
    if not hasattr(value, "probabilities"):
        raise TypeError(f"a replacement must be a tensor, an array or a provider, not {type(value).__name__}")
    return value


@contextlib.contextmanager
def heads(model, replacements: dict[tuple[int, int], object]) -> Iterator[Substitution]:
    """Yields a `Substitution` while `replacements` stand in for those heads; restores the model after."""
    model = getattr(model, "model", model) if not isinstance(model, nn.Module) else model
    _check_heads(model, replacements)
    substitution = Substitution(attention_modules(model), {k: _as_provider(v) for k, v in replacements.items()})
    with attention_function(model, _attention(substitution)):
        yield substitution


def eager(modules: dict[int, nn.Module]):
    """Returns eager attention as this module computes it (no head overridden), for wrappers that only watch."""
    return _attention(Substitution(modules, {}))


@contextlib.contextmanager
def attention_function(model: nn.Module, forward) -> Iterator[None]:
    """Runs the model's self-attention through `forward` (an `AttentionInterface` function, the eager
    mask beside it) inside the block; restores the model's own after."""
    name = f"{_NAME_PREFIX}_{next(_counter)}"
    AttentionInterface.register(name, forward)
    AttentionMaskInterface.register(name, eager_mask)
    previous = model.config._attn_implementation
    try:
        model.set_attn_implementation(name)
        yield
    finally:
        model.set_attn_implementation(previous)
        AttentionInterface._global_mapping.pop(name, None)
        AttentionMaskInterface._global_mapping.pop(name, None)
