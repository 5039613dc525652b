"""One LLM request from prompt to child: the prompt, the call (asked again, hotter, when the reply repeats an
evaluated program), the reply parsed and tidied, counted and logged.

    prompt   <- mutation (rewrite, SEARCH/REPLACE edit, or one new score term: operators.llm.term) or
                crossover messages, fitted to the context
    reply    <- client.chat(prompt)                          # calls of one generation overlap
    child    <- the program in the reply, canonical; for a term, the head's fit with it when it helps
                held-out rows; or the one-line reason there is none
    repeat?  -> ask once more, hotter, with the repeat shown as already tried
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from evo import program
from operators import base
from operators.llm import calls as llm_calls, client as llm_client, parse, prompt_fit, prompting
from operators.llm import term as llm_term
from operators.shared import canonical

_AST_LOCK = program.AST_LOCK  # parsing, sandbox checks and prompt building: one thread at a time
# A whole-program reply ends where its code block does: what small models add after it (an
# explanation, usage examples, the parents again) costs generation time and is never used.
STOP_AFTER_CODE = ["```\n\n", "```\n*", "```\nThis"]


class Exchange:
    """Turns requests into children through the LLM; shares the operator's client, ledger and logs."""

    def __init__(self, operator):
        self.op = operator                 # the LLMOperator: settings, client, ledger, calls, timers
        self._probe: prompting.Probe | None = None
        self._system: str | None = None
        self._budget: int | None = None    # prompt tokens that fit the server's context; None: unknown
        self._lock = threading.Lock()

    def prepare(self, aset_loader) -> None:
        """Loads the attention sample and the system message once."""
        op = self.op
        with self._lock:
            if self._probe is None:
                self._probe = prompting.Probe(aset_loader(), op.prompt_config)
                self._system = prompting.system_message(op.templates)
                context = op.settings.context or op.client.context_window()
                if context:   # room for a reply: a program is a few hundred tokens
                    self._budget = context - min(op.settings.max_reply_tokens, max(1024, context // 4))

    def child(self, request: base.Request) -> base.Child:
        """Returns the child for one request: prompt, call, parse, account, log.

        A reply that repeats a program evaluated before is asked once more, hotter, with the
        repeat shown as already tried; the repeat counts as a call (and toward --max-llm-calls).
        """
        op = self.op
        rng = np.random.default_rng([request.seed, 0x4C4C4D])
        form = "crossover" if request.kind == "crossover" else (
            "edit" if rng.random() < op.settings.edit_ratio else "rewrite")
        if form != "crossover" and op.terms_possible and \
                np.random.default_rng([request.seed, 0x5445524D]).random() < op.settings.term_ratio:
            form = "term"   # its own draw: the other forms' draws do not move
        parents = tuple(p.id for p in request.parents)
        with _AST_LOCK:  # CPython 3.11's parser is not thread-safe ("AST constructor recursion depth mismatch")
            if form == "crossover":
                messages = prompting.crossover_messages(op.templates, self._system, self._probe, request, rng)
            else:
                messages = prompting.mutation_messages(op.templates, self._system, self._probe, request, form, rng)
            messages = prompt_fit.fit_context(messages, self._budget)
        child, calls, spent = None, [], None
        for attempt, temperature in enumerate((op.settings.temperature, _hotter(op.settings.temperature))):
            spent = op.ledger.exhausted()
            if spent is not None:
                break
            child = self._call(request, form, messages, temperature, attempt)
            calls.append(child.meta)
            if child.source is None or not op.repeats.seen(program.key(child.source)):
                break
            op.ledger.record_repeat()
            messages = prompt_fit.already_tried(messages, child.source)
        if child is None:
            return base.Child(None, parents, f"llm.{form}", error=spent)
        return dataclasses.replace(child, meta=_summed(calls))

    def _call(self, request, form: str, messages: list[dict], temperature: float, attempt: int) -> base.Child:
        """Returns the child of one call with `messages`: call, parse, tidy, count, log."""
        op = self.op
        seed = (request.seed + attempt) % 2**31
        stop = None if form == "edit" else STOP_AFTER_CODE   # a whole program: the reply ends with its block
        reply = op.client.chat(messages, temperature, seed, stop)  # the calls overlap
        extra: dict = {}
        with _AST_LOCK:
            parsed = _parse(reply, form, request)
            if form == "term" and parsed.source:   # the offline operator fits the head with it, or says why not
                source, why, extra = llm_term.fitted(op.fallback, request, parsed.source, request.targets()[0])
                parsed = parse.Parsed(parsed.source, why, "term")
            else:
                source = canonical.tidy(parsed.source, self._probe.causal) if parsed.source else None
        outcome = "failed" if reply.text is None else ("program" if source else "parse_error")
        cost = op.ledger.record_call(reply.prompt_tokens, reply.completion_tokens, reply.latency,
                                     max(reply.attempts - 1, 0), outcome)
        op.fallback_timer.note(reply.error if reply.text is None else None)
        meta = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                "cost": cost, "latency": round(reply.latency, 3), "attempts": reply.attempts,
                "model": op.settings.model, "temperature": temperature, **extra}
        op.calls.write(request, form, messages, reply, parsed, meta)
        if op.on_call is not None:
            op.on_call(llm_calls.line(request, form, reply, parsed, meta, self._probe.n_heads))
        error = reply.error if reply.text is None else parsed.error
        return base.Child(source, tuple(p.id for p in request.parents), f"llm.{form}", error=error, meta=meta)


def _parse(reply: llm_client.Reply, form: str, request: base.Request) -> parse.Parsed:
    """Returns the program in a reply: an edit of the parent, or a whole new program."""
    if reply.text is None:
        return parse.Parsed(None, reply.error)
    if form == "edit":
        return parse.apply_edits(request.parents[0].source, reply.text)
    if form == "term":
        return llm_term.extract(reply.text)
    parsed = parse.extract_program(reply.text)
    if parsed.source is None and reply.finish_reason == "length":
        return parse.Parsed(None, f"{parsed.error} (reply cut at max tokens)")
    return parsed


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
