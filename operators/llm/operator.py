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
import threading

import numpy as np

from evo import program, run
from operators import base
from operators.llm import budget, calls as llm_calls, client as llm_client, parse, prompt_fit, prompting
from operators.shared import canonical

LOG_NAME = run.LLM_CALLS
_AST_LOCK = program.AST_LOCK  # parsing, sandbox checks and prompt building: one thread at a time
STATE_VERSION = 1
# A whole-program reply ends where its code block does: what small models add after it (an
# explanation, usage examples, the parents again) costs generation time and is never used.
STOP_AFTER_CODE = ["```\n\n", "```\n*", "```\nThis"]


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
        self._probe: prompting.Probe | None = None
        self._system: str | None = None
        self._lock = threading.Lock()
        self.calls = llm_calls.CallLog(pathlib.Path(settings.run_dir) / LOG_NAME if settings.run_dir else None)
        self.fallback_timer = llm_calls.Fallback(settings.fallback_after, settings.fallback_seconds)
        self.repeats = llm_calls.Repeats()  # tells a reply that repeats an evaluated program
        self._budget: int | None = None    # prompt tokens that fit the server's context; None: unknown
        self.on_call = None                # called with one line per finished call (the progress display)

    # --- the Operator interface -------------------------------------------------
    def vary(self, requests: list[base.Request]) -> list[base.Child]:
        """Returns one child per request, in request order, with calls running concurrently."""
        if not requests:
            return []
        reason = self.fallback_timer.active()
        if reason is not None and self.fallback is not None:
            return self._from_fallback(requests, reason)
        self._prepare()
        workers = min(self.settings.concurrency, len(requests))
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="llm") as pool:
            return list(pool.map(self._one, requests))

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

    def known(self, keys) -> None:
        """Keeps the engine's view of evaluated programs, to tell a repeated reply (see `_one`)."""
        self.repeats.known = keys

    # --- one request ------------------------------------------------------------
    def _prepare(self) -> None:
        """Loads the attention sample and the system message once."""
        with self._lock:
            if self._probe is None:
                aset = self._aset
                if aset is None:
                    from evo import attention_set
                    aset = attention_set.AttentionSet.load(self.aset_path)
                self._probe = prompting.Probe(aset, self.prompt_config)
                self._system = prompting.system_message(self.templates)
                context = self.settings.context or self.client.context_window()
                if context:   # room for a reply: a program is a few hundred tokens
                    self._budget = context - min(self.settings.max_reply_tokens, max(1024, context // 4))

    def _one(self, request: base.Request) -> base.Child:
        """Returns the child for one request: prompt, call, parse, account, log.

        A reply that repeats a program evaluated before is asked once more, hotter, with the
        repeat shown as already tried; the repeat counts as a call (and toward --max-llm-calls).
        """
        rng = np.random.default_rng([request.seed, 0x4C4C4D])
        form = "crossover" if request.kind == "crossover" else (
            "edit" if rng.random() < self.settings.edit_ratio else "rewrite")
        parents = tuple(p.id for p in request.parents)
        with _AST_LOCK:  # CPython 3.11's parser is not thread-safe ("AST constructor recursion depth mismatch")
            if form == "crossover":
                messages = prompting.crossover_messages(self.templates, self._system, self._probe, request, rng)
            else:
                messages = prompting.mutation_messages(self.templates, self._system, self._probe, request, form, rng)
            messages = prompt_fit.fit_context(messages, self._budget)
        child, calls = None, []
        for attempt, temperature in enumerate((self.settings.temperature, _hotter(self.settings.temperature))):
            spent = self.ledger.exhausted()
            if spent is not None:
                break
            child = self._call(request, form, messages, temperature, attempt)
            calls.append(child.meta)
            if child.source is None or not self.repeats.seen(program.key(child.source)):
                break
            self.ledger.record_repeat()
            messages = prompt_fit.already_tried(messages, child.source)
        if child is None:
            return base.Child(None, parents, f"llm.{form}", error=spent)
        return dataclasses.replace(child, meta=_summed(calls))

    def _call(self, request, form: str, messages: list[dict], temperature: float, attempt: int) -> base.Child:
        """Returns the child of one call with `messages`: call, parse, tidy, count, log."""
        seed = (request.seed + attempt) % 2**31
        stop = None if form == "edit" else STOP_AFTER_CODE   # a whole program: the reply ends with its block
        reply = self.client.chat(messages, temperature, seed, stop)  # the calls overlap
        with _AST_LOCK:
            parsed = self._parse(reply, form, request)
            source = canonical.tidy(parsed.source, self._probe.causal) if parsed.source else None
        outcome = "failed" if reply.text is None else ("program" if parsed.source else "parse_error")
        cost = self.ledger.record_call(reply.prompt_tokens, reply.completion_tokens, reply.latency,
                                       max(reply.attempts - 1, 0), outcome)
        self.fallback_timer.note(reply.error if reply.text is None else None)
        meta = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                "cost": cost, "latency": round(reply.latency, 3), "attempts": reply.attempts,
                "model": self.settings.model, "temperature": temperature}
        self.calls.write(request, form, messages, reply, parsed, meta)
        if self.on_call is not None:
            self.on_call(llm_calls.line(request, form, reply, parsed, meta, self._probe.n_heads))
        error = reply.error if reply.text is None else parsed.error
        return base.Child(source, tuple(p.id for p in request.parents), f"llm.{form}", error=error, meta=meta)

    def _parse(self, reply: llm_client.Reply, form: str, request: base.Request) -> parse.Parsed:
        """Returns the program in a reply: an edit of the parent, or a whole new program."""
        if reply.text is None:
            return parse.Parsed(None, reply.error)
        if form == "edit":
            return parse.apply_edits(request.parents[0].source, reply.text)
        parsed = parse.extract_program(reply.text)
        if parsed.source is None and reply.finish_reason == "length":
            return parse.Parsed(None, f"{parsed.error} (reply cut at max tokens)")
        return parsed

    def _from_fallback(self, requests: list[base.Request], reason: str) -> list[base.Child]:
        """Returns the offline fallback's children, marked as made in the LLM's place."""
        children = self.fallback.vary(requests)
        self.ledger.record_fallback(len(children))
        return [dataclasses.replace(c, meta={**c.meta, "llm_fallback": reason}) for c in children]


def _hotter(temperature: float) -> float:
    """Returns the temperature for asking again after a repeated program."""
    return round(min(max(temperature + 0.4, 0.7), 1.5), 2)


def _summed(calls: list[dict]) -> dict:
    """Returns the last call's meta with usage, cost and latency summed over all of a request's calls."""
    out = dict(calls[-1], calls=len(calls))
    for key in ("prompt_tokens", "completion_tokens", "cost", "latency"):
        out[key] = sum(c[key] for c in calls)
    out["latency"] = round(out["latency"], 3)
    return out
