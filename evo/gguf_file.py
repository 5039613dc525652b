"""GGUF files: checked before transformers reads them (the magic bytes, then the header and tensor
extents, so that an empty, foreign or truncated file is one line naming it, not a reader's traceback),
and converted once into a cached safetensors copy that loads in seconds."""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import tempfile
from typing import Callable

from evo import files, paths
from evo.errors import UserError


def check(path: pathlib.Path) -> None:
    """Raises a one-line error unless the file starts with the GGUF magic bytes."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    if magic != b"GGUF":
        raise UserError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
    _check_body(path)


def _check_body(path: pathlib.Path) -> None:
    """Raises a one-line error when the GGUF's header or tensor data cannot be read whole: what an
    interrupted download or a copy cut short leaves behind the right magic bytes."""
    import gguf

    size = path.stat().st_size
    try:
        reader = gguf.GGUFReader(path)
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except (ValueError, IndexError, KeyError, OSError, OverflowError) as err:
        raise UserError(f"{path} is a damaged GGUF file ({size:,} bytes; its header or tensors cannot be read: "
                        f"{type(err).__name__}), probably truncated; download or assemble it again") from None
    if end > size:
        raise UserError(f"{path} is a truncated GGUF file: its tensors need {end:,} bytes, it has {size:,}; "
                        "download or assemble it again")


def cache_name(gguf: pathlib.Path) -> str:
    """Returns a conversion cache name for a user GGUF file (changes when the file does)."""
    stat = gguf.stat()
    digest = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return f"gguf-{gguf.stem}-{digest}"


def complete(directory: pathlib.Path) -> bool:
    """Returns whether a converted model directory holds config, weights and tokenizer."""
    return (directory / "config.json").is_file() and any(directory.glob("*.safetensors")) and (
        (directory / "tokenizer.json").is_file() or (directory / "tokenizer_config.json").is_file())


def converted(gguf: pathlib.Path | Callable[[], pathlib.Path], cache_name: str) -> pathlib.Path:
    """Returns cache_dir()/models/<cache_name>, a safetensors copy of the GGUF model, converting once.

    `gguf` may be a function producing the file, called only when a conversion is needed.
    The copy is written into a temporary sibling directory and renamed into place, so an
    interrupted conversion never leaves a half-written cache; a lock file makes concurrent
    processes wait for one conversion instead of repeating it.
    """
    target = paths.cache_dir() / "models" / cache_name
    if complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with files.locked(target.parent / f".{cache_name}.lock"):  # another process converting it: wait for it
        if not complete(target):
            for stale in target.parent.glob(f".{cache_name}.*"):
                if stale.is_dir():  # left by a conversion that was killed; we hold the lock
                    shutil.rmtree(stale)
            source = gguf() if callable(gguf) else gguf
            try:
                _convert(source, target)
            except (ValueError, KeyError, IndexError, OSError) as err:  # a GGUF transformers cannot read
                raise UserError(f"cannot convert {source}: {type(err).__name__}: {err}") from None
    return target


def _convert(gguf: pathlib.Path, target: pathlib.Path) -> None:
    """Writes the dequantised model and its tokenizer to target through a temporary sibling directory."""
    import torch
    import transformers

    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the finished copy is an ordinary directory
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        quantised = transformers.AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, attn_implementation="eager", dtype=torch.float32)
        config = quantised.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        fresh = type(quantised)(config)
        fresh.load_state_dict(quantised.state_dict())
        fresh.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)  # incomplete leftovers from an older layout
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
