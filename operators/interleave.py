"""The "mixed" operator: each request goes to the LLM or to the offline operators, by its own seed."""

from __future__ import annotations

import concurrent.futures

import numpy as np

from evo.errors import UserError
from operators import base


class Interleaved(base.Operator):
    """Sends a share `ratio` of requests to `llm` and the rest to `offline`; children keep request order.

    The choice is drawn from the request's own seed, so it does not depend on batch order.
    The offline children are made (on the workers) while the LLM's calls are in flight.
    Budget and counters are the LLM's; requests left once it is spent go offline.
    """

    name = "mixed"

    def __init__(self, llm, offline: base.Operator, ratio: float = 0.5):
        if not 0.0 <= ratio <= 1.0:
            raise UserError(f"--llm-ratio must be within [0, 1], got {ratio}")
        self.llm = llm
        self.offline = offline
        self.ratio = ratio

    def _to_llm(self, request: base.Request) -> bool:
        """Returns whether this request is the LLM's."""
        return bool(np.random.default_rng([request.seed, 0x4D4958]).random() < self.ratio)

    def vary(self, requests: list[base.Request]) -> list[base.Child]:
        """Returns one child per request, in request order."""
        spent = self.llm.exhausted() is not None
        to_llm = [not spent and self._to_llm(r) for r in requests]
        offline = [r for r, x in zip(requests, to_llm) if not x]
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="offline") as side:
            made_offline = side.submit(self.offline.vary, offline)   # on the workers while the LLM calls run
            llm_children = iter(self.llm.vary([r for r, x in zip(requests, to_llm) if x]))
            offline_children = iter(made_offline.result())
        return [next(llm_children) if x else next(offline_children) for x in to_llm]

    def stats(self) -> dict:
        """Returns the LLM's counters for the progress display."""
        return self.llm.stats()

    def state_dict(self) -> dict:
        """Returns the LLM's counters and budgets for the checkpoint."""
        return self.llm.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restores the LLM's counters and budgets."""
        self.llm.load_state_dict(state)

    def report_to(self, message) -> None:
        """Lets the LLM show its calls as they finish."""
        self.llm.report_to(message)

    def known(self, keys) -> None:
        """Passes the evaluated programs on to both operators."""
        self.llm.known(keys)
        self.offline.known(keys)

    def exhausted(self) -> str | None:
        """Returns why the LLM budget is spent (which stops the search, as with `llm`), or None."""
        return self.llm.exhausted()
