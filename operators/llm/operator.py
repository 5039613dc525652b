"""LLM mutation and crossover over any OpenAI-compatible chat endpoint.

Calls run concurrently in a thread pool while results keep request order. Every call is
counted (tokens, cost) and logged to `llm_calls.jsonl` in the run directory. After
repeated failed calls the operator hands requests to its offline fallback for a while,
then tries the endpoint again.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import pathlib

from evo import run
from operators import base
from operators.llm import budget, calls as llm_calls, client as llm_client, exchange, prompting

LOG_NAME = run.LLM_CALLS
STATE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class LLMSettings:
    model: str = "gpt-4.1-mini"
    base_url: str | None = None          # None: api.openai.com
    concurrency: int = 4                 # calls in flight at once
    timeout: float = 120.0               # seconds per attempt
    retries: int = 4                     # further attempts on timeouts, 429 and 5xx
    backoff: float = 2.0                 # seconds before the first retry, doubled each time
    max_cost: float | None = None        # USD; the search stops cleanly once reached
    max_tokens: int | None = None        # prompt + completion tokens; same
    max_calls: int | None = None         # calls made; same (bounds an LLM that keeps repeating itself)
    context: int | None = None           # the server's context window in tokens; None: ask it, else no trimming
    price_in: float | None = None        # USD per 1M prompt tokens (overrides the built-in table)
    price_out: float | None = None       # USD per 1M completion tokens
    temperature: float = 0.8
    max_reply_tokens: int = 4096
    edit_ratio: float = 0.5              # share of mutations asked as SEARCH/REPLACE edits
    term_ratio: float = 0.25             # share of mutations asked for one score term (operators.llm.term)
    prompts_dir: str | None = None       # directory of template files overriding the built-in ones
    run_dir: str | None = None           # where llm_calls.jsonl goes; None: no log
    fallback_after: int = 3              # consecutive failed calls before using the offline fallback
    fallback_seconds: float = 300.0      # how long to stay on the fallback before trying again

    def __post_init__(self):
        from evo.errors import UserError
        if self.concurrency < 1:
            raise UserError(f"--llm-concurrency must be at least 1, got {self.concurrency}")
        if self.timeout <= 0:
            raise UserError(f"--llm-timeout must be positive, got {self.timeout}")
        if not 0.0 <= self.edit_ratio <= 1.0:
            raise UserError(f"the edit ratio must be within [0, 1], got {self.edit_ratio}")
        if not 0.0 <= self.term_ratio <= 1.0:
            raise UserError(f"--llm-term-ratio must be within [0, 1], got {self.term_ratio}")


class LLMOperator(base.Operator):
    """Mutation (rewrite or SEARCH/REPLACE edit) and crossover written by an LLM."""

    name = "llm"

    def __init__(self, settings: LLMSettings, aset_path, key: str,
                 fallback: base.Operator | None = None, client: llm_client.ChatClient | None = None,
                 prompt_config: prompting.PromptConfig = prompting.PromptConfig(), aset=None):
        self.settings = settings
        self.aset_path = pathlib.Path(aset_path)
        self.fallback = fallback
        self.templates = prompting.load_templates(settings.prompts_dir)
        self.ledger = budget.Ledger(budget.price(settings.model, settings.price_in, settings.price_out),
                                    settings.max_cost, settings.max_tokens, settings.max_calls)
        self.client = client or llm_client.ChatClient(llm_client.ClientConfig(
            model=settings.model, base_url=settings.base_url, timeout=settings.timeout,
            retries=settings.retries, backoff=settings.backoff,
            max_reply_tokens=settings.max_reply_tokens), key)
        self.prompt_config = prompt_config
        self._aset = aset                  # an already loaded AttentionSet, else read from aset_path
        self.calls = llm_calls.CallLog(pathlib.Path(settings.run_dir) / LOG_NAME if settings.run_dir else None)
        self.fallback_timer = llm_calls.Fallback(settings.fallback_after, settings.fallback_seconds)
        self.repeats = llm_calls.Repeats()  # tells a reply that repeats an evaluated program
        self.on_call = None                # called with one line per finished call (the progress display)
        self.exchange = exchange.Exchange(self)   # one request from prompt to child
        # a term from the LLM needs an offline operator that fits heads with it (operators.llm.term)
        self.terms_possible = isinstance(fallback, base.Operator) and fallback.fits_terms()

    # --- the Operator interface -------------------------------------------------
    def vary(self, requests: list[base.Request]) -> list[base.Child]:
        """Returns one child per request, in request order, with calls running concurrently."""
        if not requests:
            return []
        reason = self.fallback_timer.active()
        if reason is not None and self.fallback is not None:
            return self._from_fallback(requests, reason)
        self.exchange.prepare(self._load_aset)
        workers = min(self.settings.concurrency, len(requests))
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="llm") as pool:
            return list(pool.map(self.exchange.child, requests))

    def stats(self) -> dict:
        """Returns counters for the progress display."""
        counts = self.ledger.snapshot()
        shown = {key: counts[key] for key in ("calls", "programs", "parse_errors", "failed_calls", "retries")}
        shown["tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
        shown["cost"] = round(counts["cost"], 4)
        shown["fallback_children"] = counts["fallback_children"]
        reason = self.fallback_timer.active()
        if reason is not None:
            shown["fallback"] = reason
        return shown

    def state_dict(self) -> dict:
        """Returns the counters and budgets for the checkpoint (never the API key)."""
        return {"version": STATE_VERSION, "model": self.settings.model, "ledger": self.ledger.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restores counters and budgets saved by `state_dict`."""
        from evo.errors import UserError
        if not state:
            return  # a checkpoint from before any LLM state was kept
        if state.get("version") != STATE_VERSION:
            raise UserError(f"LLM operator state has version {state.get('version')!r}, expected {STATE_VERSION}")
        self.ledger.load_state_dict(state["ledger"])

    def exhausted(self) -> str | None:
        """Returns why the LLM budget is spent, or None."""
        return self.ledger.exhausted()

    def report_to(self, message) -> None:
        """Shows one line per finished call through `message` (the search's progress display)."""
        self.on_call = message

    def library(self, terms: tuple) -> None:
        """Passes the run's invented terms to the offline fallback, which fits with them."""
        if self.fallback is not None:
            self.fallback.library(terms)

    def known(self, keys) -> None:
        """Keeps the engine's view of evaluated programs, to tell a repeated reply (operators.llm.exchange)."""
        self.repeats.known = keys

    def _load_aset(self):
        """Returns the attention set the prompts show heads of (the one given, else read from its path)."""
        if self._aset is None:
            from evo import attention_set
            self._aset = attention_set.AttentionSet.load(self.aset_path)
        return self._aset

    def _from_fallback(self, requests: list[base.Request], reason: str) -> list[base.Child]:
        """Returns the offline fallback's children, marked as made in the LLM's place."""
        children = self.fallback.vary(requests)
        self.ledger.record_fallback(len(children))
        return [dataclasses.replace(c, meta={**c.meta, "llm_fallback": reason}) for c in children]

