"""`evo search --operators llm` end to end against the scripted loopback server."""

import json

import numpy as np
import pytest

from evo import cli
from evo.search import checkpoint, runlog
from tests.llm_server import Reply, ScriptedServer, Status

# Weak seeds for the synthetic set (k=0 previous token, k=1 first, k=2 self, k=3 uniform).
SEEDS = {
    "uniform": "import numpy as np\n\n\ndef attention(tokens):\n    return np.ones((len(tokens), len(tokens)))\n",
    "first": "import numpy as np\n\n\ndef attention(tokens):\n    out = np.zeros((len(tokens), len(tokens)))\n"
             "    out[:, 0] = 1.0\n    return out\n",
}

# What the scripted LLM proposes: the previous-token and self rules, in a few distinct forms.
PROPOSALS = [
    "import numpy as np\n\n\ndef attention(tokens):\n    n = len(tokens)\n"
    "    return np.eye(n, k=-1) + np.eye(n) * {w}\n",
    "import numpy as np\n\n\ndef attention(tokens):\n    n = len(tokens)\n"
    "    return np.eye(n) + np.eye(n, k=-1) * {w}\n",
]


def script(body):
    seed = body["seed"]
    program = PROPOSALS[seed % 2].format(w=round(0.001 * (seed % 97), 3))
    return Reply(f"The head looks local.\n```python\n{program}```")


@pytest.fixture
def seeds_dir(tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    for name, source in SEEDS.items():
        (folder / f"{name}.py").write_text(source)
    return folder


def search(server, aset, seeds_dir, run_dir, *extra):
    return cli.main(["search", "--attention-set", str(aset.path), "--seeds-dir", str(seeds_dir),
                     "--run-dir", str(run_dir), "--workers", "1", "--max-programs", "14", "--batch-size", "4",
                     "--operators", "llm", "--llm-base-url", server.base_url, "--llm-model", "gpt-4.1-mini",
                     "--llm-timeout", "5", *extra])


def best_per_head(run_dir):
    """Returns per operator family ("seed", "llm", ...) the best IoU per head over its programs."""
    best = {}
    for entry in runlog.read(run_dir / "log.jsonl"):
        if entry["iou"] is not None:
            family = entry["operator"].split(".")[0]
            best[family] = np.maximum(best.get(family, 0), entry["iou"].astype(np.float64))
    return best


def test_llm_search_improves_on_its_seeds_and_costs_match_server(tmp_path, tiny_attention_set, seeds_dir):
    run_dir = tmp_path / "run"
    with ScriptedServer(script) as server:
        assert search(server, tiny_attention_set, seeds_dir, run_dir) == 0
        used = server.total_usage()
    best = best_per_head(run_dir)
    seeds, llm_best = best["seed"], best["llm"]
    assert np.maximum(seeds, llm_best).mean() > seeds.mean() + 0.2
    assert seeds[0] < 0.6 and seeds[2] < 0.6
    assert llm_best[0] > 0.9 and llm_best[2] > 0.9       # previous token and self now explained
    calls = (run_dir / "llm_calls.jsonl").read_text().splitlines()
    assert len(calls) == used["calls"] > 0
    state = checkpoint.load(run_dir)["operator"]["ledger"]["counters"]
    assert state["prompt_tokens"] == used["prompt_tokens"]
    assert state["completion_tokens"] == used["completion_tokens"]
    assert state["cost"] == pytest.approx((used["prompt_tokens"] * 0.4 + used["completion_tokens"] * 1.6) / 1e6)


def test_failing_endpoint_falls_back_offline_and_search_finishes(tmp_path, tiny_attention_set, seeds_dir):
    with ScriptedServer([Status(500)]) as server:
        code = search(server, tiny_attention_set, seeds_dir, tmp_path / "run", "--llm-retries", "0")
    assert code == 0
    families = best_per_head(tmp_path / "run")
    assert "symbolic" in families and "llm" not in families


def test_no_key_and_no_endpoint_is_a_one_line_error_and_nothing_runs(tmp_path, tiny_attention_set, seeds_dir,
                                                                      monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    code = cli.main(["search", "--attention-set", str(tiny_attention_set.path), "--seeds-dir", str(seeds_dir),
                     "--run-dir", str(tmp_path / "run"), "--workers", "1", "--max-programs", "6",
                     "--operators", "llm"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--operators llm needs an LLM: no OPENAI_API_KEY" in err
    assert not (tmp_path / "run" / "checkpoint.json").exists()


def test_a_dead_endpoint_is_a_one_line_error_at_once(tmp_path, tiny_attention_set, seeds_dir, capsys):
    import time
    start = time.monotonic()
    code = cli.main(["search", "--attention-set", str(tiny_attention_set.path), "--seeds-dir", str(seeds_dir),
                     "--run-dir", str(tmp_path / "run"), "--workers", "1", "--max-programs", "6",
                     "--operators", "llm", "--llm-base-url", "http://127.0.0.1:9/v1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "cannot reach the LLM endpoint" in err
    assert time.monotonic() - start < 30