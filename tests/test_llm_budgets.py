"""LLM calls are budgeted, repeats change the next question, prompts fit the context, calls show as they finish."""

import json

from evo import cli, program
from operators.llm import prompt_fit
from tests.llm_server import Reply, ScriptedServer
from tests.test_llm_operator import PREVIOUS, fenced, mutate, operator
from tests.test_llm_search import seeds_dir  # noqa: F401  (the fixture)


def _search(server, aset, tmp_path, *extra):
    return cli.main(["search", "--attention-set", str(aset.path), "--seeds-dir", str(tmp_path / "seeds"),
                     "--run-dir", str(tmp_path / "run"), "--workers", "1", "--requests-per-generation", "4",
                     "--operators", "llm", "--llm-base-url", server.base_url, "--llm-model", "gpt-4.1-mini",
                     "--llm-timeout", "5", *extra])


def test_an_llm_that_keeps_repeating_itself_is_stopped_by_the_call_budget(tmp_path, tiny_attention_set, seeds_dir,
                                                                          capsys):
    with ScriptedServer([Reply(fenced(PREVIOUS))]) as server:
        assert _search(server, tiny_attention_set, tmp_path, "--max-programs", "60", "--max-llm-calls", "20") == 0
    assert server.total_usage()["calls"] <= 20 + 4   # at most one call per thread past the budget
    assert "LLM call budget 20 reached" in capsys.readouterr().out


def test_the_default_call_budget_is_four_calls_per_program(tmp_path, tiny_attention_set, seeds_dir):
    with ScriptedServer([Reply(fenced(PREVIOUS))]) as server:
        assert _search(server, tiny_attention_set, tmp_path, "--max-programs", "10") == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["operators"]["max_calls"] == 40
    assert server.total_usage()["calls"] <= 40 + 4


def test_a_repeated_reply_is_asked_again_hotter_with_the_program_shown_as_tried(tmp_path, tiny_attention_set):
    other = PREVIOUS.replace("i - 1", "i - 2")
    with ScriptedServer([Reply(fenced(PREVIOUS)), Reply(fenced(other))]) as server:
        op = operator(server, tmp_path, tiny_attention_set)
        op.known({program.key(PREVIOUS): 0})
        [child] = op.vary([mutate(1)])
    first, second = server.requests
    assert second["temperature"] > first["temperature"]
    assert "## Already tried" in second["messages"][-1]["content"]
    assert "## Already tried" not in first["messages"][-1]["content"]
    assert child.source.strip() == other.strip()
    assert child.meta["calls"] == 2 and op.ledger.snapshot()["repeats"] == 1
    assert child.meta["prompt_tokens"] == server.total_usage()["prompt_tokens"]


def test_prompts_are_trimmed_to_the_context_the_server_reports(tmp_path, tiny_attention_set):
    with ScriptedServer([Reply(fenced(PREVIOUS))]) as server:
        server.props = {"default_generation_settings": {"n_ctx": 3200}, "total_slots": 1}
        op = operator(server, tmp_path, tiny_attention_set)
        op.vary([mutate(1)])
        untrimmed = operator(server, tmp_path, tiny_attention_set, context=100_000)
        untrimmed.vary([mutate(2)])
    small, large = server.requests
    assert prompt_fit.estimate_tokens(small["messages"]) <= 3200 - 1024 < prompt_fit.estimate_tokens(large["messages"])
    assert "def attention(tokens):" in small["messages"][-1]["content"]   # the parent itself is never cut


def test_fit_context_cuts_rows_but_never_code():
    code = "```python\ndef attention(tokens):\n" + "".join(f"    x{i} = {i}\n" for i in range(40)) + "```"
    rows = "\n".join(f"  {i} \"tok\" -> 0 \"<bos>\" .90" for i in range(200))
    messages = [{"role": "system", "content": "- `sink(tokens)`: all attention on the first token"},
                {"role": "user", "content": f"{code}\n\nSentence 3:\n{rows}"}]
    trimmed = prompt_fit.fit_context(messages, 400)
    user = trimmed[-1]["content"]
    assert code in user and "more rows left out to fit the context" in user
    assert prompt_fit.estimate_tokens(trimmed) <= 400
    assert prompt_fit.fit_context(messages, None) is messages


def test_each_finished_call_is_reported_as_it_completes(tmp_path, tiny_attention_set):
    lines = []
    with ScriptedServer([Reply(fenced(PREVIOUS)), Reply("no code here")]) as server:
        op = operator(server, tmp_path, tiny_attention_set, concurrency=1)
        op.report_to(lines.append)
        op.vary([mutate(1), mutate(2)])
    assert len(lines) == 2 and all("LLM rewrite for L0.H0" in line for line in lines)
    assert "a program" in lines[0] and "no program" in lines[1]


def test_whole_program_replies_stop_after_their_code_block_and_edits_do_not(tmp_path, tiny_attention_set):
    with ScriptedServer([Reply(fenced(PREVIOUS))]) as server:
        operator(server, tmp_path, tiny_attention_set).vary([mutate(1)])
        operator(server, tmp_path, tiny_attention_set, edit_ratio=1.0).vary([mutate(2)])
    rewrite, edit = server.requests
    assert "```\n\n" in rewrite["stop"] and "stop" not in edit


def test_the_edit_prompt_shows_a_line_of_the_parent_itself_as_its_example(tmp_path, tiny_attention_set):
    with ScriptedServer([Reply(fenced(PREVIOUS))]) as server:
        operator(server, tmp_path, tiny_attention_set, edit_ratio=1.0).vary([mutate(2)])
    prompt = server.requests[0]["messages"][-1]["content"]
    assert "<<<<<<< SEARCH\n    return out\n=======" in prompt   # PREVIOUS ends with `return out`
