"""A rotary model's position embedding, read once off the model and applied at any distance.

    cos, sin   <- one forward pass of `length` tokens, recorded at each attention module's call
                  (the `position_embeddings` its decoder layer hands it): (L, T, r) each
    q at distance d  =  q * cos[d] + rotate_half(q) * sin[d]        on the first r dimensions

A rotary embedding turns a query at position i and a key at position j so that their product depends
on i - j alone: q(i) . k(j) = rotate(q, i - j) . k for the vectors read at one position (turns commute).
So a head's score for two tokens read alone, at their distance apart, is the query turned by that
distance against the key (`at_distance`). In a model's first layer this is the head's score exactly:
its input is each token's own embedding. A model whose attention is handed no rotary embedding
(learned absolute positions, as GPT-2 or BERT) has none (`read` returns None).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Turns:
    """Each layer's rotary cosines and sines by distance, scaled to unit length."""

    cos: np.ndarray   # (L, T, r)
    sin: np.ndarray   # (L, T, r)

    @property
    def length(self) -> int:
        return int(self.cos.shape[1])

    def at_distance(self, q: np.ndarray, k: np.ndarray, layer: int, gap: np.ndarray | None = None) -> np.ndarray:
        """Returns (n, n): the products of each query (n, d) turned by i - j (or by `gap` (n, n)) with each key
        (n, d); a key after its query (an encoder's) is turned the other way."""
        n, r = len(q), self.cos.shape[2]
        if gap is None:
            gap = np.subtract.outer(np.arange(n), np.arange(n))                  # (n, n) i - j
        if np.abs(gap).max(initial=0) >= self.length:
            raise ValueError(f"rotations were read for {self.length} positions, not {np.abs(gap).max() + 1}")
        cos, sin = self.cos[layer][np.abs(gap)], self.sin[layer][np.abs(gap)] * np.sign(gap)[..., None]
        head, tail = q[:, :r], q[:, r:]                                          # rotary part, the rest
        turned = head[:, None, :] * cos + _rotate_half(head)[:, None, :] * sin   # (n, n, r)
        return np.einsum("ijr,jr->ij", turned, k[:, :r]) + tail @ k[:, r:].T


def _rotate_half(x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def read(loaded, length: int) -> Turns | None:
    """Returns the model's rotary cosines and sines for distances 0 .. length - 1, every layer, or None for a
    model whose attention modules are handed no rotary embedding."""
    import torch

    from evo import substitute

    modules = substitute.attention_modules(loaded.model)
    seen: dict[int, tuple] = {}

    def hook(layer):
        def record(module, args, kwargs):
            seen[layer] = kwargs.get("position_embeddings")
        return record

    handles = [m.register_forward_pre_hook(hook(layer), with_kwargs=True) for layer, m in modules.items()]
    try:
        with torch.inference_mode():
            ids = torch.zeros((1, max(int(length), 1)), dtype=torch.long, device=loaded.device)
            loaded.model.base_model(input_ids=ids, **({"use_cache": False} if loaded.causal else {}))
    finally:
        for h in handles:
            h.remove()
    cos, sin = [], []
    for layer in sorted(modules):
        found = seen.get(layer)
        if not (isinstance(found, tuple) and len(found) == 2 and all(getattr(t, "ndim", 0) == 3 for t in found)):
            return None
        c, s = (t[0].float().cpu().numpy() for t in found)   # (T, r)
        scale = np.where(np.abs(c[:1]) > 0, c[:1], 1.0)   # position 0: cos = the embedding's scaling, sin = 0
        cos.append(c / scale)
        sin.append(s / scale)
    return Turns(np.stack(cos), np.stack(sin))
