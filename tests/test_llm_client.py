"""The chat client, the cost ledger, and the mixed operator (no sandbox needed)."""

import numpy as np
import pytest

from evo.errors import UserError
from operators import base
from operators.llm import budget, interleave, client as llm_client
from tests.llm_server import Reply, ScriptedServer, Stall, Status


def client(server, sleeps=None, **kw):
    config = llm_client.ClientConfig(model="m", base_url=server.base_url, timeout=0.5, retries=2, backoff=0.25, **kw)
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return llm_client.ChatClient(config, "test-key", sleep=sleep)


MESSAGES = [{"role": "user", "content": "Write a program."}]


def test_reply_text_and_usage_come_from_the_server():
    with ScriptedServer([Reply("def attention(tokens): ...", prompt_tokens=1234, completion_tokens=56)]) as server:
        reply = client(server).chat(MESSAGES, 0.7, seed=9)
    assert reply.text == "def attention(tokens): ..." and reply.error is None
    assert (reply.prompt_tokens, reply.completion_tokens, reply.attempts) == (1234, 56, 1)
    sent = server.requests[0]
    assert sent["temperature"] == 0.7 and sent["seed"] == 9 and sent["messages"] == MESSAGES


def test_backoff_doubles_and_honours_retry_after():
    sleeps = []
    with ScriptedServer([Status(503), Status(429, retry_after=0.05), Reply("ok")]) as server:
        reply = client(server, sleeps).chat(MESSAGES, 0.7, seed=1)
    assert reply.text == "ok" and reply.attempts == 3
    assert 0.125 <= sleeps[0] <= 0.375 and sleeps[1] == 0.05


def test_every_attempt_failing_is_a_result_not_an_exception():
    with ScriptedServer([Status(500), Status(429), Stall(2.0)]) as server:
        reply = client(server).chat(MESSAGES, 0.7, seed=1)
    assert reply.text is None and reply.attempts == 3
    assert reply.error == "LLM call failed after 3 attempt(s): HTTP 500, HTTP 429, timeout"


def test_client_errors_are_not_retried():
    with ScriptedServer([Status(400), Reply("never")]) as server:
        reply = client(server).chat(MESSAGES, 0.7, seed=1)
    assert reply.attempts == 1 and "HTTP 400" in reply.error and len(server.requests) == 1


def test_unreachable_endpoint_is_a_connection_error_result():
    with ScriptedServer([Reply("x")]) as server:
        url = server.base_url
    config = llm_client.ClientConfig(model="m", base_url=url, timeout=0.5, retries=1, backoff=0.0)
    reply = llm_client.ChatClient(config, "k", sleep=lambda s: None).chat(MESSAGES, 0.7, seed=1)
    assert reply.text is None and "connection error" in reply.error


def test_key_comes_from_environment_or_dummy_for_local_servers(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert llm_client.api_key(None) is None
    assert llm_client.api_key("https://api.openai.com/v1") is None
    assert llm_client.api_key("http://localhost:8000/v1") == llm_client.DUMMY_KEY
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert llm_client.api_key(None) == "sk-x"


def test_prices_from_table_or_flags():
    assert budget.price("gpt-4.1-mini") == (0.40, 1.60)
    assert budget.price("openai/gpt-4.1-mini") == (0.40, 1.60)
    assert budget.price("qwen2.5-coder") is None
    assert budget.price("qwen2.5-coder", 0.1, 0.2) == (0.1, 0.2)
    assert budget.price("gpt-4.1-mini", price_out=3.0) == (0.40, 3.0)
    with pytest.raises(UserError, match="both"):
        budget.price("qwen2.5-coder", price_in=0.1)


def test_ledger_cost_budget_and_resume_keeps_run_budget():
    ledger = budget.Ledger((1.0, 2.0), max_cost=0.003)
    assert ledger.record_call(1000, 500, 1.0, 0, "program") == pytest.approx(0.002)
    assert ledger.exhausted() is None
    ledger.record_call(1000, 0, 1.0, 1, "parse_error")
    assert ledger.exhausted() == "LLM cost budget $0.003 reached ($0.003 spent)"
    resumed = budget.Ledger((1.0, 2.0))
    resumed.load_state_dict(ledger.state_dict())
    assert resumed.max_cost == 0.003 and resumed.snapshot() == ledger.snapshot()
    raised = budget.Ledger((1.0, 2.0), max_cost=1.0)
    raised.load_state_dict(ledger.state_dict())
    assert raised.max_cost == 1.0 and raised.exhausted() is None


class Tagged:
    """An operator whose children name it and the request seed."""

    def __init__(self, tag, spent=None):
        self.tag, self.spent, self.seen = tag, spent, []

    def vary(self, requests):
        self.seen.extend(r.seed for r in requests)
        return [base.Child(f"{self.tag}{r.seed}", (), self.tag) for r in requests]

    def exhausted(self):
        return self.spent


def requests(n):
    p = base.Parent("p", "src", np.zeros(2), 3)
    return [base.Request("mutate", (p,), (0,), seed) for seed in range(n)]


def test_mixed_splits_by_ratio_and_keeps_order():
    llm, offline = Tagged("llm"), Tagged("off")
    children = interleave.Interleaved(llm, offline, ratio=0.3).vary(requests(400))
    assert [c.source for c in children] == [f"{c.operator}{i}" for i, c in enumerate(children)]
    assert 90 <= len(llm.seen) <= 150
    again = interleave.Interleaved(Tagged("llm"), Tagged("off"), ratio=0.3).vary(requests(400)[::-1])
    assert [c.operator for c in again[::-1]] == [c.operator for c in children]


def test_mixed_goes_offline_once_llm_budget_is_spent():
    llm = Tagged("llm", spent="LLM token budget 10 reached")
    mixed = interleave.Interleaved(llm, Tagged("off"), ratio=1.0)
    assert {c.operator for c in mixed.vary(requests(5))} == {"off"} and llm.seen == []
    assert mixed.exhausted() == "LLM token budget 10 reached"
    with pytest.raises(UserError):
        interleave.Interleaved(llm, Tagged("off"), ratio=1.5)


def _children(maker, n):
    return [base.Child("src", (), f"{maker}.x") for _ in range(n)]


def test_a_useless_llm_loses_its_share_and_a_helpful_one_keeps_it():
    mixed = interleave.Interleaved(Tagged("llm"), Tagged("off"), ratio=0.5)
    assert mixed.share == 0.5
    mixed.outcomes(_children("llm", 20) + _children("symbolic", 20),
                   [True] * 2 + [False] * 18 + [True] * 10 + [False] * 10)
    assert mixed.share == pytest.approx(0.5 * (3 / 22) / (11 / 22))   # 0.136
    llm_now = sum(c.operator == "llm" for c in mixed.vary(requests(400)))
    assert 30 < llm_now < 80
    mixed.outcomes(_children("llm", 80), [False] * 80)
    assert mixed.share == 0.5 * interleave.MIN_SHARE                  # never below a tenth of the ratio
    helpful = interleave.Interleaved(Tagged("llm"), Tagged("off"), ratio=0.5)
    helpful.outcomes(_children("llm", 20) + _children("symbolic", 20), [True] * 10 + [False] * 10 + [True] * 5 + [False] * 15)
    assert helpful.share == 0.5
    again = interleave.Interleaved(Tagged("llm"), Tagged("off"), ratio=0.5)
    again.llm.state_dict = lambda: {}
    again.llm.load_state_dict = lambda state: None
    mixed.llm.state_dict = lambda: {}
    again.load_state_dict(mixed.state_dict())                     # the record survives a resume
    assert again.share == mixed.share
