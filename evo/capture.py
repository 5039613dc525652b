"""Running a model over a corpus into an attention set, and the cached `ensure` the other commands use.

Sentences are run in length-sorted batches, right-padded with an attention mask: for a
decoder the real tokens precede the padding, so causal rows never see it; for an encoder
the mask hides it. Either way a sentence's top-left n x n block equals its unpadded pass
(the tests check this on every architecture).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import re
import time
import warnings
from typing import Callable

import numpy as np

from evo import attention_set, files, paths
from evo.errors import UserError

DEFAULT_MAX_TOKENS = 64
DEFAULT_BATCH_SIZE = 8
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
_LISTED = 5


@dataclasses.dataclass(frozen=True)
class Encoded:
    ids: list[list[int]]  # token ids per sentence, specials included, at most max_tokens
    truncated: list[int]  # indices of sentences cut to max_tokens


def encode(tokenizer, sentences, max_tokens: int) -> Encoded:
    """Returns each sentence's token ids (specials added as the tokenizer does), cut to max_tokens."""
    ids, truncated = [], []
    for i, text in enumerate(sentences):
        full = tokenizer(text)["input_ids"]
        if len(full) > max_tokens:
            full = tokenizer(text, truncation=True, max_length=max_tokens)["input_ids"]
            truncated.append(i)
        if not full:
            raise UserError(f"sentence {i + 1} ({text[:40]!r}) gives no tokens")
        ids.append([int(t) for t in full])
    return Encoded(ids=ids, truncated=truncated)


def truncation_warning(truncated: list[int], total: int, max_tokens: int) -> str:
    """Returns the one-line warning for sentences cut to max_tokens."""
    shown = ", ".join(str(i + 1) for i in truncated[:_LISTED])
    more = f" and {len(truncated) - _LISTED} more" if len(truncated) > _LISTED else ""
    return (f"{len(truncated)} of {total} sentences are longer than --sentence-tokens {max_tokens} and were "
            f"truncated to {max_tokens} tokens (sentence {shown}{more})")


def batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Returns sentence indices grouped into batches of similar length, longest first."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def forward_attentions(loaded, batch_ids: list[list[int]]) -> list[np.ndarray]:
    """Returns, per sentence, float16 (n_layers * n_heads, n, n) attention from one padded forward pass."""
    import torch

    lengths = [len(ids) for ids in batch_ids]
    width = max(lengths)
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(batch_ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
    for row, ids in enumerate(batch_ids):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        mask[row, :len(ids)] = 1
    kwargs = {"use_cache": False} if loaded.causal else {}
    with torch.inference_mode():
        out = loaded.model.base_model(input_ids=input_ids.to(loaded.device), attention_mask=mask.to(loaded.device),
                                      output_attentions=True, **kwargs)
    attentions = out.attentions
    if not attentions or attentions[0] is None:
        raise RuntimeError("the model returned no attention weights; load it with attn_implementation='eager'")
    assert len(attentions) == loaded.n_layers, (len(attentions), loaded.n_layers)
    stacked = torch.stack(attentions, dim=1)  # (B, L, H, T, T)
    assert stacked.shape[2] == loaded.n_heads, (stacked.shape, loaded.n_heads)
    stacked = stacked.to(torch.float16).cpu()
    heads = loaded.n_layers * loaded.n_heads
    return [stacked[row, :, :, :n, :n].reshape(heads, n, n).numpy() for row, n in enumerate(lengths)]


def capture(loaded, corpus, out_dir, max_tokens: int = DEFAULT_MAX_TOKENS, batch_size: int = DEFAULT_BATCH_SIZE,
            progress: Callable[[int, int], None] | None = None, settings: dict | None = None):
    """Returns the AttentionSet written to out_dir from running the loaded model over the corpus."""
    from evo import tokens

    _check_settings(loaded, corpus, max_tokens, batch_size)
    start = time.perf_counter()
    encoded = encode(loaded.tokenizer, corpus.sentences, max_tokens)
    notes = list(getattr(corpus, "warnings", ()))
    if encoded.truncated:
        notes.append(truncation_warning(encoded.truncated, len(corpus.sentences), max_tokens))
        warnings.warn(notes[-1], stacklevel=2)
    meta = {
        "model": loaded.name, "model_source": getattr(loaded, "source", ""), "causal": loaded.causal,
        "n_layers": loaded.n_layers, "n_heads": loaded.n_heads,
        "corpus": {"source": corpus.source, "fingerprint": corpus.fingerprint, "sentences": len(corpus.sentences)},
        "max_tokens": max_tokens, "dtype": str(loaded.model.dtype).removeprefix("torch."),
        "device": str(loaded.device), "settings": dict(settings or {}), "warnings": notes,
        "truncated": encoded.truncated, "sentences": list(corpus.sentences), "token_ids": encoded.ids,
        "tokens": [tokens.render(loaded.tokenizer, ids) for ids in encoded.ids],
    }
    total = sum(len(ids) for ids in encoded.ids)
    done = 0
    with attention_set.Writer(out_dir, meta, [len(ids) for ids in encoded.ids]) as writer:
        for batch in batches([len(ids) for ids in encoded.ids], batch_size):
            for i, matrices in zip(batch, forward_attentions(loaded, [encoded.ids[i] for i in batch])):
                writer.add(i, matrices)
            done += len(batch)
            if progress:
                progress(done, len(encoded.ids))
        seconds = time.perf_counter() - start
        writer.meta["stats"] = {"sentences": len(encoded.ids), "tokens": total, "seconds": round(seconds, 3),
                                "tokens_per_second": round(total / seconds, 1) if seconds > 0 else None}
        return writer.commit()


def _check_settings(loaded, corpus, max_tokens: int, batch_size: int) -> None:
    """Raises UserError for settings capture cannot honour."""
    if not corpus.sentences:
        raise UserError(f"corpus {corpus.source} has no sentences")
    _check_numbers(max_tokens, batch_size)
    limit = getattr(loaded.model.config.get_text_config(), "max_position_embeddings", None)
    if limit and max_tokens > limit:
        raise UserError(f"--sentence-tokens {max_tokens} exceeds the model's {limit} positions")


def _check_numbers(max_tokens: int, batch_size: int) -> None:
    """Raises UserError for a non-positive --sentence-tokens or --batch-size."""
    if max_tokens < 1:
        raise UserError(f"--sentence-tokens must be at least 1, got {max_tokens}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")


def settings_key(model: str, corpus, max_tokens: int, dtype: str | None) -> str:
    """Returns the cache key of a capture: model identity, corpus fingerprint and settings."""
    payload = {"schema": attention_set.SCHEMA_VERSION, "model": _model_identity(model),
               "corpus": corpus.fingerprint, "max_tokens": max_tokens,  # the content, not how its path is spelled
               "dtype": dtype or "float32"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _model_identity(model: str) -> object:
    """Returns what identifies a model's weights: the name, or for a local path its files' sizes and times."""
    path = pathlib.Path(model).expanduser()
    if not path.exists():
        return model
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    return [str(path.resolve())] + [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def default_dir(model: str, key: str) -> pathlib.Path:
    """Returns cache_dir()/attention/<model slug>-<key>."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", pathlib.Path(model).name or model).strip("-")[:40] or "model"
    return paths.cache_dir() / "attention" / f"{slug}-{key}"


def stored(out_dir: pathlib.Path, key: str):
    """Returns the set at out_dir when it exists with this key, else None; UserError if out_dir is not a set."""
    if not out_dir.exists():
        return None
    if not (out_dir / attention_set.META_FILE).is_file():
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            return None
        raise UserError(f"{out_dir} exists and is not an attention set; choose another --out")
    try:
        aset = attention_set.AttentionSet.load(out_dir)
    except UserError as err:   # unreadable (a copy cut short, a schema of another version): captured again
        warnings.warn(f"the stored attention set at {out_dir} cannot be read ({err}); capturing it again",
                      stacklevel=3)
        return None
    if aset.meta.get("settings", {}).get("key") != key:
        return None
    problem = aset.verify() if aset.checksums is not None else "it was captured before sets carried checksums"
    if problem:
        warnings.warn(f"the stored attention set at {out_dir} cannot be trusted ({problem}); "
                      "capturing it again", stacklevel=3)
        return None
    return aset


def ensure_status(model: str = "gemma-3-270m", corpus_path: str | None = None, split: str = "search",
                  max_tokens: int = DEFAULT_MAX_TOKENS, device: str = "cpu", dtype: str | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE, out_dir=None, force: bool = False,
                  progress: Callable[[int, int], None] | None = None):
    """Returns (AttentionSet, reused): the stored set for these settings, captured first if absent."""
    from evo import corpus as corpus_module
    from evo import models

    _check_numbers(max_tokens, batch_size)
    corpus = corpus_module.load(corpus_path, split)
    key = settings_key(model, corpus, max_tokens, dtype)
    out = pathlib.Path(out_dir).expanduser() if out_dir else default_dir(model, key)
    existing = None if force else stored(out, key)
    if existing is not None:
        return existing, True
    if force and out.exists() and not (out / attention_set.META_FILE).is_file() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not an attention set; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    with files.locked(out.parent / f".{out.name}.lock"):  # another process capturing the same set: wait, reuse it
        existing = None if force else stored(out, key)
        if existing is not None:
            return existing, True
        _remove_partial(out)
        loaded = models.load(model, device=device, dtype=dtype)
        settings = {"key": key, "model": model, "corpus_path": corpus_path, "split": split,
                    "max_tokens": max_tokens, "dtype": dtype or "float32"}
        return capture(loaded, corpus, out, max_tokens=max_tokens, batch_size=batch_size, progress=progress,
                       settings=settings), False


def _remove_partial(out: pathlib.Path) -> None:
    """Removes what a capture killed mid-write left beside `out` (hidden sibling folders); the caller holds the lock."""
    import shutil

    for stale in out.parent.glob(f".{out.name}.*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def ensure(model: str = "gemma-3-270m", corpus_path: str | None = None, split: str = "search",
           max_tokens: int = DEFAULT_MAX_TOKENS, device: str = "cpu", dtype: str | None = None):
    """Returns the cached AttentionSet for these settings, loading the model and capturing only when absent."""
    return ensure_status(model, corpus_path, split, max_tokens, device, dtype)[0]
