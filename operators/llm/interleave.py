"""The "mixed" operator: each request goes to the LLM or to the offline operators, by its own seed."""

from __future__ import annotations

import concurrent.futures

import numpy as np

from evo.errors import UserError
from operators import base


EARLY = 12         # children of each maker evaluated before the LLM's share adapts
MIN_SHARE = 0.1    # the LLM keeps at least this fraction of --llm-ratio, to keep finding out


class Interleaved(base.Operator):
    """Sends a share of requests to `llm` (at most `ratio`) and the rest to `offline`; children keep request order.

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
        self.record = {"llm": [0, 0], "offline": [0, 0]}   # who made them -> [evaluated, improved a head]

    @property
    def share(self) -> float:
        """Returns the share of requests the LLM gets now: --llm-ratio, less while its children improve less.

        Once the LLM has EARLY children evaluated, its share is the ratio scaled by its rate
        of children that raise some head's best IoU over the offline operators' rate
        (Laplace-smoothed), never above the ratio nor below a tenth of it: an LLM that
        helps keeps its share, a useless one costs little of the program budget.
        """
        (n_llm, up_llm), (n_off, up_off) = self.record["llm"], self.record["offline"]
        if n_llm < EARLY or n_off < EARLY:
            return self.ratio
        rate = ((up_llm + 1) / (n_llm + 2)) / ((up_off + 1) / (n_off + 2))
        return self.ratio * float(np.clip(rate, MIN_SHARE, 1.0))

    def _to_llm(self, request: base.Request, share: float) -> bool:
        """Returns whether this request is the LLM's."""
        return bool(np.random.default_rng([request.seed, 0x4D4958]).random() < share)

    def outcomes(self, children: list[base.Child], improved: list[bool]) -> None:
        """Counts, per maker, evaluated children and those that raised some head's best IoU."""
        for child, up in zip(children, improved):
            tally = self.record["llm" if child.operator.startswith("llm.") else "offline"]
            tally[0] += 1
            tally[1] += int(up)

    def vary(self, requests: list[base.Request]) -> list[base.Child]:
        """Returns one child per request, in request order."""
        spent, share = self.llm.exhausted() is not None, self.share
        to_llm = [not spent and self._to_llm(r, share) for r in requests]
        offline = [r for r, x in zip(requests, to_llm) if not x]
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="offline") as side:
            made_offline = side.submit(self.offline.vary, offline)   # on the workers while the LLM calls run
            llm_children = iter(self.llm.vary([r for r, x in zip(requests, to_llm) if x]))
            offline_children = iter(made_offline.result())
        return [next(llm_children) if x else next(offline_children) for x in to_llm]

    def stats(self) -> dict:
        """Returns the LLM's counters for the progress display, and its share of requests now."""
        return {**self.llm.stats(), "llm_share": round(self.share, 3)}

    def state_dict(self) -> dict:
        """Returns the LLM's counters and budgets, and who made which children, for the checkpoint."""
        return {**self.llm.state_dict(), "mixed": {k: list(v) for k, v in self.record.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restores the LLM's counters and budgets, and the record the share is drawn from."""
        self.llm.load_state_dict({k: v for k, v in state.items() if k != "mixed"})
        for who, (made, up) in (state.get("mixed") or {}).items():
            if who in self.record:
                self.record[who] = [int(made), int(up)]

    def report_to(self, message) -> None:
        """Lets the LLM show its calls as they finish."""
        self.llm.report_to(message)

    def library(self, terms: tuple) -> None:
        """Tells both operators the run's invented terms."""
        self.llm.library(terms)
        self.offline.library(terms)

    def known(self, keys) -> None:
        """Passes the evaluated programs on to both operators."""
        self.llm.known(keys)
        self.offline.known(keys)

    def exhausted(self) -> str | None:
        """Returns why the LLM budget is spent (which stops the search, as with `llm`), or None."""
        return self.llm.exhausted()
