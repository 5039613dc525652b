"""The LLM flags of `evo search`, and building the "llm" and "mixed" operators from a run's settings."""

from __future__ import annotations

import pathlib

from evo.errors import UserError
from operators import base
from operators.llm import interleave, operator as llm, client as llm_client

CALLS_PER_PROGRAM = 4   # the default --max-llm-calls per program of the search's budget
# settings key -> (flag, type, default, help)
FLAGS = {
    "llm_model": ("--llm-model", str, "gpt-4.1-mini", "chat model name at the endpoint"),
    "llm_base_url": ("--llm-base-url", str, None,
                     "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (default: OpenAI, "
                     "or $OPENAI_BASE_URL); the key is read from $OPENAI_API_KEY"),
    "llm_ratio": ("--llm-ratio", float, 0.5, "share of requests sent to the LLM with --operators mixed"),
    "llm_concurrency": ("--llm-concurrency", int, 4, "LLM calls in flight at once"),
    "llm_timeout": ("--llm-timeout", float, 120.0, "seconds per LLM request before it is retried"),
    "llm_retries": ("--llm-retries", int, 4, "retries per call on timeouts, 429 and 5xx (with backoff)"),
    "max_cost": ("--max-cost", float, None, "stop the search once the LLM calls cost this many USD"),
    "max_tokens": ("--max-llm-tokens", int, None, "stop the search once the LLM calls used this many tokens"),
    "max_calls": ("--max-llm-calls", int, None,
                  f"stop the search once this many LLM calls were made (default: {CALLS_PER_PROGRAM} per "
                  "program of --max-programs, so an LLM that keeps repeating itself cannot run on)"),
    "llm_context": ("--llm-context", int, None,
                    "the server's context window in tokens; prompts are trimmed to fit it with room for the "
                    "reply (default: asked of the server, else no trimming)"),
    "llm_price_in": ("--llm-price-in", float, None, "USD per 1M prompt tokens (default: built-in table)"),
    "llm_price_out": ("--llm-price-out", float, None, "USD per 1M completion tokens (default: built-in table)"),
    "llm_temperature": ("--llm-temperature", float, 0.8, "sampling temperature"),
    "llm_edit_ratio": ("--llm-edit-ratio", float, 0.5,
                       "share of LLM mutations asked as SEARCH/REPLACE edits rather than rewrites"),
    "llm_term_ratio": ("--llm-term-ratio", float, 0.25,
                       "share of LLM mutations asked for one new score term from the head's residual, kept "
                       "only when it adds IoU on held-out rows, rather than a whole program"),
    "llm_max_reply_tokens": ("--llm-max-reply-tokens", int, 4096, "completion tokens per call at most"),
    "prompts_dir": ("--prompts-dir", str, None, "directory of prompt templates overriding the built-in ones"),
}


def add_arguments(parser) -> None:
    """Adds the LLM flags to a command's parser."""
    group = parser.add_argument_group("LLM operators (--operators llm or mixed)")
    for key, (flag, kind, default, text) in FLAGS.items():
        shown = f" (default: {default})" if default is not None and "default" not in text else ""
        group.add_argument(flag, dest=key, type=kind, default=default, help=text + shown)
    from evo.commands import flags
    flags.deprecated(group, "--max-tokens", "--max-llm-tokens", "max_tokens", int)  # its name before 0.2


def settings_from_args(args) -> dict:
    """Returns the LLM settings a run stores in its config.json (never the API key)."""
    settings = {key: getattr(args, key, default) for key, (_, _, default, _) in FLAGS.items()}
    if settings["max_calls"] is None and getattr(args, "operators", "offline") != "offline" \
            and getattr(args, "max_programs", None):
        settings["max_calls"] = CALLS_PER_PROGRAM * args.max_programs
    if settings["prompts_dir"]:
        settings["prompts_dir"] = str(pathlib.Path(settings["prompts_dir"]).resolve())
    return settings


def unavailable(settings: dict) -> str | None:
    """Returns why the LLM operators cannot run (no key, no endpoint), or None."""
    base_url = settings.get("llm_base_url")
    if llm_client.api_key(base_url) is None:
        return ("no OPENAI_API_KEY in the environment and no --llm-base-url for a local server")
    return None


def llm_settings(settings: dict) -> llm.LLMSettings:
    """Returns the operator's settings from a run's stored settings (defaults for missing keys)."""
    get = lambda key: settings.get(key, FLAGS[key][2])  # noqa: E731
    return llm.LLMSettings(
        model=get("llm_model"), base_url=get("llm_base_url"), concurrency=get("llm_concurrency"),
        timeout=get("llm_timeout"), retries=get("llm_retries"), max_cost=get("max_cost"),
        max_tokens=get("max_tokens"), max_calls=get("max_calls"), context=get("llm_context"), price_in=get("llm_price_in"), price_out=get("llm_price_out"),
        temperature=get("llm_temperature"), edit_ratio=get("llm_edit_ratio"), term_ratio=get("llm_term_ratio"),
        max_reply_tokens=get("llm_max_reply_tokens"), prompts_dir=get("prompts_dir"),
        run_dir=settings.get("run_dir"))


def build(settings: dict, aset_path, offline: base.Operator, check: bool = True) -> base.Operator:
    """Returns the operator for settings["operators"]: the LLM's, mixed, or `offline` when no LLM is usable."""
    kind = settings.get("operators", "offline")
    if kind == "offline":
        return offline
    reason = unavailable(settings)
    if reason is not None:
        raise UserError(f"--operators {kind} needs an LLM: {reason} (or use --operators offline)")
    key = llm_client.api_key(settings.get("llm_base_url"))
    operator = llm.LLMOperator(llm_settings(settings), aset_path, key, fallback=offline)
    if check:
        problem = operator.client.check()
        if problem is not None:
            raise UserError(f"{problem}; nothing was run (start the server, or use --operators offline)")
    if kind == "mixed":
        return interleave.Interleaved(operator, offline, settings.get("llm_ratio", FLAGS["llm_ratio"][2]))
    return operator
