"""What the LLM operator keeps about its calls: the call log on disk, the line shown per call,
the programs its replies held (to tell repeats), and the fallback timer."""

from __future__ import annotations

import json
import logging
import pathlib
import threading
import time

log = logging.getLogger("headcode.llm")


class CallLog:
    """Appends one JSON line per LLM call to a file (llm_calls.jsonl in the run directory); None: no log."""

    def __init__(self, path: pathlib.Path | None):
        self.path = path
        self._lock = threading.Lock()

    def write(self, request, form: str, messages: list[dict], reply, parsed, meta: dict) -> None:
        """Appends the call: request, prompt, reply, usage, cost and latency, the program or why there is none."""
        if self.path is None:
            return
        record = {"time": time.time(), "seed": request.seed, "kind": request.kind, "form": form,
                  "parents": [p.id for p in request.parents], "heads": list(request.heads),
                  "messages": messages, "reply": reply.text, "finish_reason": reply.finish_reason,
                  "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens},
                  **{k: meta[k] for k in ("cost", "latency", "attempts", "model")},
                  "error": reply.error, "program": parsed.source, "parse_error": parsed.error if reply.text else None}
        if form == "term":   # the function the LLM wrote is `program`; the term kept, if it helped held-out rows
            record["term"] = meta.get("term")
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)


class Fallback:
    """Counts consecutive failed calls; after `after` of them, says to use the offline operators for `seconds`."""

    def __init__(self, after: int, seconds: float):
        self.after, self.seconds = after, seconds
        self._lock = threading.Lock()
        self._failures = 0
        self._until = 0.0                  # time.monotonic() until which the fallback is used
        self._reason: str | None = None

    def note(self, error: str | None) -> None:
        """Notes one finished call (`error` None when it answered); switches to the fallback after too many failures."""
        with self._lock:
            if error is None:
                self._failures = 0
                return
            self._failures += 1
            if self._failures < self.after:
                return
            self._failures = 0
            self._until = time.monotonic() + self.seconds
            self._reason = (f"{self.after} LLM calls failed in a row (last: {error}); offline operators for "
                            f"{self.seconds:.0f} s")
        log.warning("%s", self._reason)

    def active(self) -> str | None:
        """Returns why the fallback is in use now, or None."""
        with self._lock:
            return self._reason if time.monotonic() < self._until else None


def line(request, form: str, reply, parsed, meta: dict, heads_per_layer: int) -> str:
    """Returns the one line shown for a finished call: which head, how long, and what came of it."""
    k = request.heads[0] if request.heads else 0
    what = (f"failed: {reply.error}" if reply.text is None else
            "a program" if parsed.source else f"no program ({parsed.error})")
    return (f"[{time.strftime('%H:%M:%S')}] LLM {form} for L{k // heads_per_layer}.H{k % heads_per_layer}: "
            f"{meta['latency']:.1f} s, {reply.prompt_tokens} + {reply.completion_tokens} tokens, {what}")


class Repeats:
    """The program keys replies held, beside the engine's live view of those it evaluated (`known`)."""

    def __init__(self):
        self.known = {}                    # set by the engine (Operator.known): keys evaluated already
        self._made: set[str] = set()
        self._lock = threading.Lock()

    def seen(self, key: str) -> bool:
        """Returns whether the program was evaluated before or held by an earlier reply (and notes it)."""
        with self._lock:
            found = key in self.known or key in self._made
            self._made.add(key)
        return found
