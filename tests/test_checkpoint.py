"""Checkpoints: atomic writes, strict reads, and `evo search`/`evo resume` on a real tiny run."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from evo import cli, files, search
from evo.search import checkpoint
from evo.errors import UserError
from test_search_toys import SEEDS, engine


@pytest.fixture
def toy_run(tmp_path):
    e = engine(tmp_path / "run", budget=search.Budget(max_programs=30))
    e.seed(SEEDS)
    e.run()
    return tmp_path / "run"


def test_truncated_checkpoint_is_a_clear_error(toy_run):
    path = toy_run / "checkpoint.json"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match="is corrupt .not valid JSON"):
        checkpoint.load(toy_run)


def test_wrong_schema_version_and_missing_fields_are_refused(toy_run):
    path = toy_run / "checkpoint.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps(dict(data, schema_version=99)))
    with pytest.raises(UserError, match="schema version 99"):
        checkpoint.load(toy_run)
    del data["rng"]
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="missing rng"):
        checkpoint.load(toy_run)


def test_missing_checkpoint_or_run_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no run directory"):
        checkpoint.load(tmp_path / "nope")
    with pytest.raises(UserError, match="no checkpoint at"):
        checkpoint.load(tmp_path)


def test_disk_full_keeps_the_previous_checkpoint(toy_run, monkeypatch):
    before = (toy_run / "checkpoint.json").read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.json, "dump", full)
    with pytest.raises(UserError, match="No space left on device; the previous checkpoint.json is intact"):
        checkpoint.save(toy_run, {"generation": 1})
    assert (toy_run / "checkpoint.json").read_bytes() == before
    assert [p.name for p in toy_run.iterdir() if p.name.endswith(".tmp")] == []


def test_checkpoint_round_trips_exact_scores_and_rng(toy_run):
    state = checkpoint.load(toy_run)
    e = engine(toy_run)
    e.load_state(state)
    assert e.state()["archive"] == state["archive"]
    assert e.rng.bit_generator.state == state["rng"]


# ---- the CLI on a real tiny attention set (real sandbox, evaluator and symbolic operators) ----


def _evo(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evo.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def _search_args(aset, run_dir, workers=2, max_programs=90):
    return [str(a) for a in ("search", "--attention-set", aset.path, "--run-dir", run_dir, "--max-programs",
                             max_programs, "--batch-size", 8, "--workers", workers, "--seed", 11)]


def _final(run_dir):
    state = checkpoint.load(run_dir)
    records = [(r["id"], r["key"], r["iou"]) for r in state["archive"]["records"]]
    return records, state["fronts"], state["rng"]


def test_search_refuses_a_run_dir_with_a_checkpoint_and_resume_needs_one(tiny_attention_set, tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert cli.main(_search_args(tiny_attention_set, run_dir, workers=1, max_programs=25)) == 0
    assert cli.main(_search_args(tiny_attention_set, run_dir, workers=1)) == 2
    assert f"continue it with `evo resume {run_dir}`" in capsys.readouterr().err
    assert cli.main(["resume", str(tmp_path / "missing")]) == 2
    assert "no run directory at" in capsys.readouterr().err


def test_resume_refuses_a_changed_attention_set(tiny_attention_set, tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert cli.main(_search_args(tiny_attention_set, run_dir, workers=1, max_programs=25)) == 0
    meta = tiny_attention_set.path / "meta.json"
    data = json.loads(meta.read_text())
    data["tokens"][0][1] = "A"
    meta.write_text(json.dumps(data))
    assert cli.main(["resume", str(run_dir), "--max-programs", "40"]) == 2
    assert "has changed since the run started" in capsys.readouterr().err


def test_results_do_not_depend_on_worker_count(tiny_attention_set, tmp_path):
    for workers in (1, 2):
        done = _evo(*_search_args(tiny_attention_set, tmp_path / f"w{workers}", workers=workers, max_programs=60))
        assert done.returncode == 0, done.stderr
    assert _final(tmp_path / "w1") == _final(tmp_path / "w2")


def test_sigkill_then_resume_ends_with_the_uninterrupted_front(tiny_attention_set, tmp_path):
    whole = _evo(*_search_args(tiny_attention_set, tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "evo.cli", *map(str, _search_args(tiny_attention_set, run_dir))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    generation = -1
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            generation = json.loads((run_dir / "checkpoint.json").read_text())["generation"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        if generation >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = checkpoint.load(run_dir)["spent"]["programs"]
    assert generation >= 2 and killed_at < 90, "the search finished before it could be killed"
    resumed = _evo("resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert _final(run_dir) == _final(tmp_path / "whole")


def test_sigint_writes_a_checkpoint_and_prints_the_resume_command(tiny_attention_set, tmp_path):
    run_dir = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "evo.cli", *map(str, _search_args(tiny_attention_set, run_dir,
                                                                                   max_programs=100000))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoint.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"evo resume {run_dir}" in err
    state = checkpoint.load(run_dir)
    assert state["spent"]["programs"] == len(state["archive"]["records"])
    assert np.isfinite(state["spent"]["seconds"])
