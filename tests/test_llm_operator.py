"""The LLM operator against a real OpenAI-compatible HTTP server on loopback."""

import json
import threading
import time

import numpy as np
import pytest

from evo.errors import UserError
from operators import base
from operators.llm import budget, operator as llm
from tests.llm_server import Reply, ScriptedServer, Stall, Status

PREVIOUS = '''import numpy as np


def attention(tokens):
    n = len(tokens)
    out = np.zeros((n, n))
    for i in range(n):
        out[i, max(i - 1, 0)] = 1.0
    return out
'''
FIRST = "import numpy as np\n\n\ndef attention(tokens):\n    out = np.zeros((len(tokens), len(tokens)))\n    out[:, 0] = 1.0\n    return out\n"


class Unchanged:
    """An offline operator that returns each request's first parent unchanged."""

    name = "unchanged"

    def vary(self, requests):
        return [base.Child(r.parents[0].source, (r.parents[0].id,), "unchanged") for r in requests]


def parent(source=FIRST, pid="p1", iou=(0.1, 1.0, 0.2, 0.3)):
    return base.Parent(pid, source, np.array(iou), 20)


def mutate(seed=1, source=FIRST):
    return base.Request("mutate", (parent(source),), (0,), seed)


def fenced(source):
    return f"Here you go:\n```python\n{source}```\n"


@pytest.fixture
def aset(tiny_attention_set):
    """The synthetic set: k=0 previous token, k=1 first token, k=2 self, k=3 uniform causal."""
    return tiny_attention_set


def operator(server, tmp_path, aset, **kw):
    settings = dict(model="gpt-4.1-mini", base_url=server.base_url, timeout=1.0, retries=2,
                    backoff=0.01, edit_ratio=0.0, run_dir=str(tmp_path), concurrency=4)
    settings.update(kw)
    return llm.LLMOperator(llm.LLMSettings(**settings), aset.path, key="sk-test-secret-key",
                           fallback=Unchanged())


def test_good_program_becomes_child_and_cost_matches_server_usage(tmp_path, aset):
    with ScriptedServer([Reply(fenced(PREVIOUS))]) as server:
        op = operator(server, tmp_path, aset)
        children = op.vary([mutate(1), mutate(2)])
    assert [c.operator for c in children] == ["llm.rewrite", "llm.rewrite"]
    assert all(c.source.strip() == PREVIOUS.strip() and c.error is None for c in children)
    used = server.total_usage()
    counts = op.ledger.snapshot()
    assert counts["prompt_tokens"] == used["prompt_tokens"] > 500
    assert counts["completion_tokens"] == used["completion_tokens"]
    price_in, price_out = budget.PRICES["gpt-4.1-mini"]
    expected = (used["prompt_tokens"] * price_in + used["completion_tokens"] * price_out) / 1e6
    assert counts["cost"] == pytest.approx(expected)
    assert sum(c.meta["cost"] for c in children) == pytest.approx(expected)


def test_prompt_shows_head_parent_and_its_worst_rows(tmp_path, aset):
    with ScriptedServer([Reply(fenced(PREVIOUS))]) as server:
        operator(server, tmp_path, aset).vary([mutate(3)])
    system, user = server.requests[0]["messages"]
    assert "def attention(tokens: list[str])" in system["content"] and "is_punct" in system["content"]
    text = user["content"]
    assert "layer 0 head 0" in text and "IoU 0.100" in text and "out[:, 0] = 1.0" in text
    assert '" sat" -> 2 " cat" 1.00' in text          # the head: " sat" attends to " cat"
    assert "head:    " in text and 'program: 0 "<bos>" 1.00' in text   # a failing row, both sides
    assert server.requests[0]["seed"] == 3 and server.requests[0]["model"] == "gpt-4.1-mini"


def test_edit_reply_is_applied_to_parent(tmp_path, aset):
    edit = "<<<<<<< SEARCH\n    out[:, 0] = 1.0\n=======\n    out[np.arange(len(tokens)), np.maximum(np.arange(len(tokens)) - 1, 0)] = 1.0\n>>>>>>> REPLACE\n"
    with ScriptedServer([Reply(edit)]) as server:
        child = operator(server, tmp_path, aset, edit_ratio=1.0).vary([mutate()])[0]
    assert child.operator == "llm.edit" and child.error is None
    assert "np.maximum(np.arange(len(tokens)) - 1, 0)" in child.source
    assert "<<<<<<< SEARCH" in server.requests[0]["messages"][1]["content"]


def test_edit_that_does_not_apply_is_an_error_child(tmp_path, aset):
    with ScriptedServer([Reply("<<<<<<< SEARCH\nnot there\n=======\nx\n>>>>>>> REPLACE\n")]) as server:
        op = operator(server, tmp_path, aset, edit_ratio=1.0)
        child = op.vary([mutate()])[0]
    assert child.source is None and "SEARCH text not found" in child.error
    assert op.stats()["parse_errors"] == 1


def test_malformed_reply_is_recorded_failure_with_reply_logged(tmp_path, aset):
    with ScriptedServer([Reply("I think the head attends to nouns.")]) as server:
        op = operator(server, tmp_path, aset)
        child = op.vary([mutate()])[0]
    assert child.source is None and child.error == "reply has no `def attention`"
    record = json.loads((tmp_path / llm.LOG_NAME).read_text().splitlines()[0])
    assert record["reply"] == "I think the head attends to nouns."
    assert record["parse_error"] == child.error and record["program"] is None
    assert record["usage"]["prompt_tokens"] == server.usage[0]["prompt_tokens"]


def test_429_and_500_are_retried(tmp_path, aset):
    script = [Status(429, retry_after=0.01), Status(500), Reply(fenced(PREVIOUS))]
    with ScriptedServer(script) as server:
        op = operator(server, tmp_path, aset)
        child = op.vary([mutate()])[0]
    assert child.source is not None and child.meta["attempts"] == 3
    assert op.stats()["retries"] == 2 and len(server.requests) == 3


def test_stall_past_timeout_is_retried(tmp_path, aset):
    with ScriptedServer([Stall(3.0), Reply(fenced(PREVIOUS))]) as server:
        child = operator(server, tmp_path, aset, timeout=0.5).vary([mutate()])[0]
    assert child.source is not None and child.meta["attempts"] == 2


def test_repeated_failures_fall_back_to_offline_and_say_so(tmp_path, aset):
    with ScriptedServer([Status(500)]) as server:
        op = operator(server, tmp_path, aset, retries=1, fallback_after=2, concurrency=1)
        failed = op.vary([mutate(1), mutate(2)])
        calls = len(server.requests)
        later = op.vary([mutate(3)])
    assert all(c.source is None and "HTTP 500" in c.error for c in failed)
    assert calls == 4 and len(server.requests) == calls          # no more calls while falling back
    assert later[0].operator == "unchanged" and "2 LLM calls failed in a row" in later[0].meta["llm_fallback"]
    stats = op.stats()
    assert stats["failed_calls"] == 2 and stats["fallback_children"] == 1 and "HTTP 500" in stats["fallback"]


def test_calls_run_concurrently_and_results_keep_request_order(tmp_path, aset):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def script(body):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.2 if body["seed"] % 2 else 0.05)       # odd seeds answer later
        with lock:
            in_flight[0] -= 1
        return Reply(fenced(PREVIOUS.replace("i - 1", f"i - {body['seed']}")))

    with ScriptedServer(script) as server:
        children = operator(server, tmp_path, aset, concurrency=4).vary([mutate(s) for s in range(1, 7)])
    assert peak[0] >= 2
    assert [f"i - {s}" in c.source for s, c in zip(range(1, 7), children)] == [True] * 6


def test_token_budget_stops_calls_and_reports_reason(tmp_path, aset):
    with ScriptedServer([Reply(fenced(PREVIOUS))]) as server:
        op = operator(server, tmp_path, aset, max_tokens=100, concurrency=1)
        assert op.exhausted() is None
        first = op.vary([mutate(1)])
        second = op.vary([mutate(2)])
    assert first[0].source is not None and len(server.requests) == 1
    assert op.exhausted().startswith("LLM token budget 100 reached")
    assert second[0].source is None and second[0].error == op.exhausted()


def test_state_dict_round_trip_restores_counters_and_budgets(tmp_path, aset):
    with ScriptedServer([Reply(fenced(PREVIOUS))]) as server:
        op = operator(server, tmp_path, aset, max_cost=0.0001)
        op.vary([mutate(1)])
        state = json.loads(json.dumps(op.state_dict()))
        resumed = operator(server, tmp_path, aset)
        resumed.load_state_dict(state)
    assert resumed.stats() == op.stats() and "fallback" not in op.stats()
    assert resumed.ledger.max_cost == 0.0001 and resumed.exhausted() == op.exhausted()
    with pytest.raises(UserError):
        resumed.load_state_dict({"version": 99})


def test_crossover_prompt_shows_both_parents(tmp_path, aset):
    request = base.Request("crossover", (parent(FIRST, "a"), parent(PREVIOUS, "b", (1.0, 0.1, 0.2, 0.3))), (0, 1), 5)
    with ScriptedServer([Reply(fenced(PREVIOUS))]) as server:
        child = operator(server, tmp_path, aset).vary([request])[0]
    text = server.requests[0]["messages"][1]["content"]
    assert child.operator == "llm.crossover" and child.parents == ("a", "b")
    assert "Program A" in text and "Program B" in text and "B scores 1.00" in text


def test_api_key_is_never_logged(tmp_path, aset, monkeypatch):
    with ScriptedServer([Reply(fenced(PREVIOUS))]) as server:
        op = operator(server, tmp_path, aset)
        op.vary([mutate()])
        state = json.dumps(op.state_dict())
    assert "sk-test-secret-key" not in (tmp_path / llm.LOG_NAME).read_text()
    assert "sk-test-secret-key" not in state


def test_unknown_template_field_is_user_error(tmp_path, aset):
    (tmp_path / "rewrite.txt").write_text("Fix $parent for $nonsense")
    with pytest.raises(UserError, match="unknown field"):
        llm.LLMOperator(llm.LLMSettings(prompts_dir=str(tmp_path)), tmp_path, key="k")


def test_max_cost_without_a_price_is_user_error(tmp_path, aset):
    with pytest.raises(UserError, match="--llm-price-in"):
        llm.LLMOperator(llm.LLMSettings(model="qwen2.5-coder", max_cost=1.0), tmp_path, key="k")
