"""Token and cost accounting for LLM calls, with the budgets that stop a search."""

from __future__ import annotations

import dataclasses
import threading

from evo.errors import UserError

# USD per 1M tokens (input, output), list prices; override with --llm-price-in/--llm-price-out.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o4-mini": (1.10, 4.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
}


def price(model: str, price_in: float | None = None, price_out: float | None = None) -> tuple[float, float] | None:
    """Returns (input, output) USD per 1M tokens for `model`, explicit prices first; None when unknown."""
    known = PRICES.get(model) or PRICES.get(model.split("/")[-1])
    if price_in is None and price_out is None:
        return known
    if known is None and (price_in is None or price_out is None):
        raise UserError(f"give both --llm-price-in and --llm-price-out for model {model!r} (no built-in price)")
    base = known or (0.0, 0.0)
    return (base[0] if price_in is None else price_in, base[1] if price_out is None else price_out)


def usd(amount: float) -> str:
    """Returns "$12.50" for amounts from a dollar up, "$0.0031" below."""
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.2g}"


_COUNTERS = ("calls", "programs", "parse_errors", "failed_calls", "retries", "repeats",
             "prompt_tokens", "completion_tokens", "cost", "latency_s", "fallback_children")


class Ledger:
    """Thread-safe counters of LLM calls, tokens and cost, bounded by optional budgets."""

    def __init__(self, prices: tuple[float, float] | None, max_cost: float | None = None,
                 max_tokens: int | None = None, max_calls: int | None = None):
        if max_cost is not None and prices is None:
            raise UserError("--max-cost needs a price for this model: give --llm-price-in and --llm-price-out")
        if max_cost is not None and max_cost <= 0:
            raise UserError(f"--max-cost must be positive, got {max_cost}")
        if max_tokens is not None and max_tokens <= 0:
            raise UserError(f"--max-llm-tokens must be positive, got {max_tokens}")
        if max_calls is not None and max_calls <= 0:
            raise UserError(f"--max-llm-calls must be positive, got {max_calls}")
        self.prices = prices
        self.max_calls = max_calls
        self.max_cost = max_cost
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._counts = {name: 0 for name in _COUNTERS}
        self._counts["cost"] = 0.0
        self._counts["latency_s"] = 0.0

    def call_cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Returns the USD cost of one call's usage (0 when the price is unknown)."""
        if self.prices is None:
            return 0.0
        return (prompt_tokens * self.prices[0] + completion_tokens * self.prices[1]) / 1e6

    def record_call(self, prompt_tokens: int, completion_tokens: int, latency: float,
                    retries: int, outcome: str) -> float:
        """Counts one finished call (`outcome`: "program", "parse_error" or "failed"); returns its cost."""
        assert outcome in ("program", "parse_error", "failed"), outcome
        cost = self.call_cost(prompt_tokens, completion_tokens)
        with self._lock:
            c = self._counts
            c["calls"] += 1
            c["prompt_tokens"] += prompt_tokens
            c["completion_tokens"] += completion_tokens
            c["cost"] += cost
            c["latency_s"] += latency
            c["retries"] += retries
            c[{"program": "programs", "parse_error": "parse_errors", "failed": "failed_calls"}[outcome]] += 1
        return cost

    def record_repeat(self) -> None:
        """Counts a reply whose program had been evaluated already."""
        with self._lock:
            self._counts["repeats"] += 1

    def record_fallback(self, n: int) -> None:
        """Counts children made by the offline fallback instead of the LLM."""
        with self._lock:
            self._counts["fallback_children"] += n

    @property
    def tokens(self) -> int:
        with self._lock:
            return self._counts["prompt_tokens"] + self._counts["completion_tokens"]

    def exhausted(self) -> str | None:
        """Returns why the budget is spent, or None while it is not."""
        with self._lock:
            cost = self._counts["cost"]
            tokens = self._counts["prompt_tokens"] + self._counts["completion_tokens"]
            calls = self._counts["calls"]
        if self.max_calls is not None and calls >= self.max_calls:
            return f"LLM call budget {self.max_calls:,} reached ({calls:,} calls made)"
        if self.max_cost is not None and cost >= self.max_cost:
            return f"LLM cost budget {usd(self.max_cost)} reached ({usd(cost)} spent)"
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return f"LLM token budget {self.max_tokens:,} reached ({tokens:,} used)"
        return None

    def snapshot(self) -> dict:
        """Returns a copy of every counter."""
        with self._lock:
            return dict(self._counts)

    def state_dict(self) -> dict:
        """Returns the counters and budgets as JSON-able data for a checkpoint."""
        return {"counters": self.snapshot(), "max_cost": self.max_cost, "max_tokens": self.max_tokens,
                "max_calls": self.max_calls}

    def load_state_dict(self, state: dict) -> None:
        """Restores counters (unknown ones ignored) and the budgets they were bounded by."""
        with self._lock:
            for name, value in state.get("counters", {}).items():
                if name in self._counts:
                    self._counts[name] = value
        # A budget given on the resume command line wins; otherwise the run's own budget stays.
        if self.max_cost is None:
            self.max_cost = state.get("max_cost")
        if self.max_tokens is None:
            self.max_tokens = state.get("max_tokens")
        if self.max_calls is None:
            self.max_calls = state.get("max_calls")
