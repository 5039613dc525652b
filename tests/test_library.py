"""The run's library of invented terms: what a term is, the grammar that proposes them, the edit that keeps one
only when it helps held-out rows, the library checkpointed with the run, and programs that carry their terms."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from evo import attention_set, cli, evaluate, sandbox, terms
from evo.errors import UserError
from evo.search import checkpoint, library
from operators import base
from operators.edits import symbolic
from operators.fitting import grammar, library_terms, scored_text, term_edits
from operators.shared.ast_edits import NotApplicable

WORDS = [" the", " cat", " sat", " dog", " ran", " a", " big", " red", ",", ".", " and", " on"]
STOPS = (" cat", " sat")   # queries of head 0 that look to the first token (" dog", " ran" do not: no part
                         # of speech tells them apart), every other query looks one back


def _term(name="_on_commas", doc="On commas seen before the query.", body="return columns(tokens, is_punct)"):
    return terms.Term(name, f'def {name}(tokens):\n    """{doc}"""\n    {body}\n', "test", 0, 0, 0.0)


def _sentences(rng: np.random.Generator, count: int) -> list[list[str]]:
    return [["<bos>", *rng.choice(WORDS, size=int(rng.integers(7, 13))).tolist()] for _ in range(count)]


def _heads(tokens: list[str]) -> np.ndarray:
    """Returns (4, n, n): head 0 from " cat" and " sat" to the first token, else one back; head 1 one back;
    head 2 the first token; head 3 uniform."""
    n = len(tokens)
    prev = np.eye(n, k=-1)
    prev[0, 0] = 1.0
    first = np.zeros((n, n))
    first[:, 0] = 1.0
    by_query = np.where(np.isin(tokens, STOPS)[:, None], 0.9 * first + 0.1 * prev, 0.9 * prev + 0.1 * first)
    uniform = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]
    return np.stack([by_query, prev, first, uniform])


@pytest.fixture
def query_set(tmp_path):
    """Returns a causal set (2 layers x 2 heads, 60 sentences) whose head 0 no fixed term explains: what it
    looks at depends on the query's own token."""
    tokens = _sentences(np.random.default_rng(3), 60)
    meta = {"model": "synthetic-query", "causal": True, "n_layers": 2, "n_heads": 2,
            "corpus": {"source": "tests:query", "fingerprint": "1" * 16}, "max_tokens": 64, "dtype": "float32",
            "tokens": tokens, "sentences": ["".join(t[1:]) for t in tokens]}
    return attention_set.write(tmp_path / "query-set", meta, [_heads(t) for t in tokens])


# ---- what a term is ----


@pytest.mark.parametrize("source, name, says", [
    ("def on_commas(tokens):\n    '''On commas before the query.'''\n    return 1\n", "on_commas", "private"),
    ("def _on_commas(tokens):\n    return 1\n", "_on_commas", "docstring"),
    ("def _on_commas(tokens):\n    '''x'''\n    return 1\n", "_on_commas", "docstring"),
    ("def _a(tokens):\n    '''On commas here.'''\n    return 1\n\ndef _b(t):\n    return 2\n", "_a", "one function"),
    ("def _a(tokens, more):\n    '''On commas before it.'''\n    return 1\n", "_a", "one argument"),
    ("def _a(tokens:\n", "_a", "does not parse"),
])
def test_a_term_must_be_one_private_function_of_tokens_with_a_docstring_in_words(source, name, says):
    with pytest.raises(UserError, match=says):
        terms.check(source, name)


def test_a_term_that_crashes_hangs_reads_outside_or_misbehaves_is_contained_by_the_sandbox():
    quick = sandbox.Limits(seconds=0.5)
    sentences = [["<bos>", " a", ","], ["<bos>", " b"]]
    cases = {"return 1 / 0": "ZeroDivisionError", "while True:\n        pass": "timeout",
             "return open('/etc/passwd').read()": "not allowed", "return np.ones((2, 3))": "wrong shape",
             "return np.full((len(tokens), len(tokens)), np.nan)": "non-finite",
             "import os\n    return os.listdir('/')": "not allowed"}
    for body, says in cases.items():
        reason = terms.values(_term(body=body), sentences, quick)
        assert isinstance(reason, str) and reason.startswith("term _on_commas") and says in reason, (body, reason)
    good = terms.values(_term(), sentences, quick)
    np.testing.assert_array_equal(good[0][0], [0.0, 0.0, 1.0])


# ---- the grammar ----


def test_every_candidate_of_the_grammar_runs_in_the_sandbox_and_says_in_words_what_it_marks():
    sentences = _sentences(np.random.default_rng(0), 30)
    lengths = [len(t) for t in sentences]
    rows = np.concatenate([np.pad(_heads(t)[0], ((0, 0), (0, max(lengths) - len(t)))) for t in sentences])
    seen = set()
    for seed in range(6):
        for term in grammar.candidates(np.random.default_rng(seed), sentences, lengths, rows, "L0.H0", count=6):
            terms.check(term.source, term.name)
            assert len(term.doc.split()) >= 4, term.doc
            found = terms.values(term, sentences[:5])
            assert not isinstance(found, str), found
            assert [m.shape for m in found] == [(n, n) for n in lengths[:5]]
            seen.add(term.origin.split(":")[1].split()[0])
    assert {"query", "nearest", "since", "same"} <= seen


def test_a_query_table_reads_which_queries_lean_on_a_piece_off_the_head():
    sentences = _sentences(np.random.default_rng(1), 40)
    lengths = [len(t) for t in sentences]
    rows = np.concatenate([np.pad(_heads(t)[0], ((0, 0), (0, max(lengths) - len(t)))) for t in sentences])
    term = grammar.query_table(sentences, lengths, rows, "sink", grammar.PIECES["sink"], "L0.H0")
    table = ast.literal_eval(term.source.split("query_weight(tokens, ")[1].split(") * sink")[0])
    assert min(table[w] for w in STOPS) > max(v for w, v in table.items() if w not in STOPS) + 1.0
    assert term.name == "_sink_by_query_l0h0" and "more from" in term.doc and "L0.H0" in term.doc


# ---- the invent_term edit ----


def _operator(aset, **weights) -> symbolic.SymbolicOperator:
    settings = symbolic.Settings(mutate_weights=weights or {"invent_term": 1.0}, wide_sentences=60)
    return symbolic.SymbolicOperator(settings, aset.path, True)


def _request(head: int, seed: int) -> base.Request:
    parent = base.Parent("p", "def attention(tokens):\n    return sink(tokens)\n", np.zeros(4), 5)
    return base.Request("mutate", (parent,), (head,), seed, 3)


def test_invent_term_keeps_a_term_that_explains_the_heads_residual_on_held_out_rows(query_set):
    op = _operator(query_set)
    child = op._child(_request(0, 11))
    assert child.source is not None, child.error
    term = terms.Term.from_dict(dict(child.meta["term"], generation=1))
    assert term.gain >= 0.05 and term.head == 0 and "by_query" in term.name
    assert f"{term.name}(tokens)" in child.source and term.source.strip() in child.source
    before = evaluate.evaluate(["def attention(tokens):\n    return previous_token(tokens)\n"], query_set.path)[0]
    after = evaluate.evaluate([child.source], query_set.path)[0]
    assert after.ok and after.iou[0] > before.iou[0] + 0.1


def test_a_request_keeps_every_term_that_helps_beyond_those_before_it_and_the_library_takes_them_all(query_set):
    after_cat = _term("_sink_after_cat", "On the first token, from a cat.",
                      'return np.isin(tokens, [" cat"])[:, None] * sink(tokens)')
    after_sat = _term("_sink_after_sat", "On the first token, from sat.",
                      'return np.isin(tokens, [" sat"])[:, None] * sink(tokens)')
    again = _term("_sink_after_cat_again", "On the first token, from a cat, once more.",
                  'return 2.0 * np.isin(tokens, [" cat"])[:, None] * sink(tokens)')
    child, meta = _operator(query_set).fit_terms(_request(0, 4), [after_cat, again, after_sat])
    kept = [terms.Term.from_dict(dict(d, generation=1)) for d in meta["terms"]]
    names = {t.name for t in kept}
    assert "_sink_after_sat" in names and len(names & {"_sink_after_cat", "_sink_after_cat_again"}) == 1
    assert len(kept) == 2                                     # of the twins (one is twice the other), one only
    assert all(t.gain >= term_edits.MIN_GAIN and t.head == 0 for t in kept)
    assert meta["term"] == meta["terms"][0] and all(f"{t.name}(tokens)" in child for t in kept)
    made = base.Child(child, (), "symbolic.fit_term", meta=meta)
    assert [t.name for t in library.Library().admit([made], [_Ran()], 2)] == [t.name for t in kept]


def test_invent_term_gives_no_child_where_the_vocabulary_already_explains_the_head(query_set):
    child = _operator(query_set)._child(_request(2, 5))   # head 2: the first token, exactly a fixed term
    assert child.source is None and "held-out rows" in child.error


def test_the_library_joins_every_scored_fit_and_a_program_reads_back_as_its_terms(query_set):
    op = _operator(query_set)
    made = op._child(_request(0, 11))
    term = terms.Term.from_dict(dict(made.meta["term"], generation=1))
    op.library((term,))
    problem = op._wide_problem()
    assert problem.keys[-1].expr == f"{term.name}(tokens)" and problem.keys[-1].definition == term.source
    read = scored_text.read(made.source, problem)
    assert read and any(problem.feats[i].expr == f"{term.name}(tokens)" for i, _ in read)
    rewritten = made.source.replace("return query_weight(", "return 2.0 * query_weight(")
    assert scored_text.read(rewritten, problem) is None   # not the library's term any more
    refit = _operator(query_set, fit_wide=1.0)
    refit.library((term,))
    child = refit._child(_request(0, 3))
    assert term.name in child.source


def test_a_term_that_fails_on_the_set_is_left_out_of_the_fits(query_set):
    values = library_terms.Values(query_set.path, sandbox.Limits(seconds=0.5))
    broken = _term(name="_broken", body="return 1 / 0")
    assert values.feature(broken) is None and "ZeroDivisionError" in values.failure(broken)
    assert values.feature(_term()).expr == "_on_commas(tokens)"


# ---- the library in the engine ----


class _Ran:
    def __init__(self, ok=True):
        self.ok = ok


def test_the_library_admits_each_term_once_from_children_that_ran_until_full():
    lib = library.Library(size=2)
    a, b, c = (_term(name=f"_t{i}", doc=f"On commas, kind {i} of three.") for i in range(3))
    child = lambda t: base.Child("src", (), "symbolic.invent_term", meta={"term": t.to_dict()})  # noqa: E731
    again = _term(name="_t9", doc="On commas, kind 0 of three.")   # another name, a's definition otherwise
    added = lib.admit([child(a), child(a), child(b)], [_Ran(), _Ran(), _Ran(False)], generation=4)
    assert [t.name for t in added] == ["_t0"] and lib.terms[0].generation == 4
    lib.admit([child(again), child(c), child(b)], [_Ran()] * 3, generation=5)
    assert [t.name for t in lib.terms] == ["_t0", "_t9"]   # full at 2
    restored = library.Library()
    restored.load(json.loads(json.dumps(lib.state())))
    assert restored.terms == lib.terms


def test_a_checkpoint_with_a_damaged_term_is_refused_in_one_line():
    lib = library.Library()
    with pytest.raises(UserError, match="docstring"):
        lib.load([dict(_term().to_dict(), source="def _on_commas(tokens):\n    return 1\n")])
    with pytest.raises(UserError, match="list of terms"):
        lib.load({"terms": []})


def _search(aset, run_dir, programs=150):
    return ["search", "--attention-set", str(aset.path), "--run-dir", str(run_dir), "--max-programs",
            str(programs), "--workers", "1", "--seed", "7", "--batch-size", "12"]


def _final(run_dir):
    state = checkpoint.load(run_dir)
    return state["fronts"], state["library"], [r["source"] for r in state["archive"]["records"]]


@pytest.mark.faults
def test_kill_9_while_the_library_grows_then_resume_gives_the_same_library_and_fronts(query_set, tmp_path):
    """Injects: SIGKILL once the run's library holds a term and before the run ends. Checks: the resumed run
    ends with the same library (term by term), fronts and archive as one never interrupted."""
    assert cli.main(_search(query_set, tmp_path / "whole")) == 0
    whole = _final(tmp_path / "whole")
    assert whole[1], "no term joined the library in the uninterrupted run"
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "evo.cli", *_search(query_set, run_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    grown, deadline = 0, time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            grown = len(json.loads((run_dir / "checkpoint.json").read_text())["library"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        if grown:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = checkpoint.load(run_dir)
    assert grown and killed["spent"]["programs"] < 150, "the search finished before its library grew"
    assert cli.main(["resume", str(run_dir)]) == 0
    assert _final(run_dir) == whole


def test_an_exported_program_carries_its_terms_and_runs_standalone(query_set, tmp_path):
    run_dir = tmp_path / "r"
    assert cli.main(_search(query_set, run_dir, programs=120)) == 0
    assert cli.main(["export", str(run_dir), "--out", str(run_dir / "out")]) == 0
    names = {t["name"] for t in checkpoint.load(run_dir)["library"]}
    files = [f for f in (run_dir / "out" / "programs").glob("*.py") if any(n in f.read_text() for n in names)]
    assert names and files, "no exported program uses a library term"
    listed = json.loads((run_dir / "out" / "front.json").read_text())["library"]
    assert {t["name"] for t in listed} == names and all(len(t["doc"].split()) >= 4 for t in listed)
    assert {f"{pid}.py" for t in listed for pid in t["programs"]} == {f.name for f in files}
    for f in files:
        tree = ast.parse(f.read_text())
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names):
            assert len((ast.get_docstring(fn) or "").split()) >= 4
    script = ("import runpy, sys\nfor f in sys.argv[1:]:\n    a = runpy.run_path(f)['attention']"
              "(['<bos>', ' the', ' cat', ','])\n    assert a.shape == (4, 4), f\nprint('ran', len(sys.argv) - 1)")
    done = subprocess.run([sys.executable, "-c", script, *map(str, files)], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[1])})
    assert done.returncode == 0 and f"ran {len(files)}" in done.stdout, done.stderr


# ---- a term written by an LLM ----


LLM_TERM = '''Here is a term.
```python
def SinkAfterCat(tokens):
    """On the first token, from the words cat and sat."""
    n = len(tokens)
    out = np.zeros((n, n))
    for i, t in enumerate(tokens):
        if t in (" cat", " sat"):
            out[i, 0] = 1.0
    return out
```
'''
USELESS = '''```python
def _nothing(tokens):
    """Marks nothing at all, anywhere."""
    return np.zeros((len(tokens), len(tokens)))
```'''


def _llm_operator(server, aset, tmp_path, ratio=1.0):
    from operators.llm import operator as llm
    offline = symbolic.SymbolicOperator(symbolic.Settings(wide_sentences=60), aset.path, True)
    settings = llm.LLMSettings(model="gpt-4.1-mini", base_url=server.base_url, timeout=5.0, retries=0,
                               term_ratio=ratio, run_dir=str(tmp_path), concurrency=2)
    return llm.LLMOperator(settings, aset.path, key="sk-test", fallback=offline)


def test_an_llm_term_is_asked_from_the_residual_and_kept_only_when_it_helps_held_out_rows(query_set, tmp_path):
    from tests.llm_server import Reply, ScriptedServer
    replies = iter([LLM_TERM, USELESS, "no code here"])
    with ScriptedServer(lambda body: Reply(next(replies))) as server:
        op = _llm_operator(server, query_set, tmp_path)
        kept, useless, none = (op.vary([_request(0, seed)])[0] for seed in (1, 2, 3))
    prompt = server.requests[0]["messages"][-1]["content"]
    assert "Write ONE new score term" in prompt and "Where it misses most" in prompt
    assert kept.operator == "llm.term" and kept.source is not None, kept.error
    term = terms.Term.from_dict(dict(kept.meta["term"], generation=1))
    assert term.name == "_sinkaftercat" and term.origin == "llm" and term.gain >= 0.05
    assert f"{term.name}(tokens)" in kept.source
    assert useless.source is None and "held-out rows" in useless.error
    assert none.source is None and "no function" in none.error
    lib = library.Library()
    assert [t.name for t in lib.admit([kept, useless], [_Ran(), _Ran()], 2)] == ["_sinkaftercat"]


def test_without_an_offline_fitter_the_llm_is_never_asked_for_a_term(query_set, tmp_path):
    from operators.llm import operator as llm
    from tests.llm_server import Reply, ScriptedServer
    program = "```python\ndef attention(tokens):\n    return sink(tokens)\n```"
    with ScriptedServer(lambda body: Reply(program)) as server:
        settings = llm.LLMSettings(base_url=server.base_url, timeout=5.0, retries=0, term_ratio=1.0, edit_ratio=0.0)
        op = llm.LLMOperator(settings, query_set.path, key="sk-test", fallback=None)
        child = op.vary([_request(0, 1)])[0]
    assert child.operator == "llm.rewrite" and child.source is not None


def test_a_run_made_before_term_libraries_resumes_without_inventing_terms(query_set):
    from evo import run
    config = run.RunConfig(model="m", corpus=None, split="search", sentence_tokens=64, attention_set={},
                           captured=False, seed=1, budgets={}, settings={}, operators={"symbolic": {}},
                           vocabulary={"linguistic": False, "invented": True})   # as runs were before libraries
    options = run.operator_settings(config, pathlib.Path("r"))["symbolic"]
    assert options["library"] is False
    assert not symbolic.SymbolicOperator(symbolic.Settings(**options), query_set.path, True).fits_terms()
    child = symbolic.SymbolicOperator(symbolic.Settings(library=False, mutate_weights={"invent_term": 1.0}),
                                      query_set.path, True)._child(_request(0, 11))
    assert child.source is None and "no symbolic edit enabled" in child.error


def test_a_candidate_that_is_numerically_a_term_already_there_is_dropped_before_any_fit(query_set):
    values = np.random.default_rng(0).random((50, 3))
    assert term_edits._repeats(values, 3.0 * values[:, 1] + 1.0) and term_edits._repeats(values, np.ones(50))
    assert not term_edits._repeats(values, values[:, 0] + values[:, 2])
    op = _operator(query_set)
    sink_again = _term(name="_first_again", doc="On the first token, written once more.",
                       body="return 3.0 * sink(tokens) + 1.0")
    flat = _term(name="_flat", doc="The same score on every key there is.",
                 body="return np.ones((len(tokens), len(tokens)))")
    with pytest.raises(NotApplicable, match="none of 2 invented terms"):
        op.fit_terms(_request(0, 1), [sink_again, flat])
