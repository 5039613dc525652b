"""Faults injected, not reasoned about: kill -9 at random instants, a full disk, damaged caches, a second
process on a live run, an LLM endpoint that dies or talks nonsense mid-run.

Each test says what it injects and what it checks. The tier runs in CI (`pytest -m faults`).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from evo import attention_set, cli
from evo.search import checkpoint, runlog
from tests import conftest
from tests.llm_server import Reply, ScriptedServer

pytestmark = pytest.mark.faults
RNG = np.random.default_rng(29)   # the instants at which processes are killed: random, but the same each run


def _evo(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evo.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _kill_after(args, seconds: float) -> int:
    """Starts `evo ARGS`, kills its whole process group with SIGKILL after `seconds`; returns its exit status."""
    proc = subprocess.Popen([sys.executable, "-m", "evo.cli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode


def _timed(args) -> float:
    """Returns how long `evo ARGS` takes when nothing goes wrong (it must succeed)."""
    start = time.monotonic()
    done = _evo(*args)
    assert done.returncode == 0, done.stderr
    return time.monotonic() - start


# ---- kill -9 at random instants ----


@pytest.fixture
def long_corpus(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("\n".join(conftest.SENTENCES * 60) + "\n", encoding="utf-8")
    return path


def test_kill_9_during_capture_then_capture_again_gives_the_clean_matrices(tiny_gpt2_dir, long_corpus, tmp_path):
    """Injects: SIGKILL at three random instants of `evo capture`. Checks: capturing again completes, leaves no
    partial set behind, and gives the same matrices as a capture never interrupted."""
    clean = tmp_path / "clean"
    args = ["capture", "--model", tiny_gpt2_dir, "--corpus", long_corpus]
    took = _timed([*args, "--out", clean])
    out = tmp_path / "killed"
    for instant in RNG.uniform(0.2, took, size=3):
        _kill_after([*args, "--out", out], instant)
        done = _evo(*args, "--out", out)
        assert done.returncode == 0, done.stderr
        a, b = attention_set.AttentionSet.load(clean), attention_set.AttentionSet.load(out, verify=True)
        assert a.tokens == b.tokens
        for i in range(0, len(a), 37):
            np.testing.assert_array_equal(a.matrices(i), b.matrices(i))
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".killed.")], "a partial set was left"
        shutil.rmtree(out)


def _search(aset, run_dir, programs=90, workers=2):
    return ["search", "--attention-set", aset.path, "--run-dir", run_dir, "--max-programs", programs,
            "--requests-per-generation", 8, "--workers", workers, "--seed", 11]


def _final(run_dir):
    state = checkpoint.load(run_dir)
    return [(r["id"], r["key"], r["iou"]) for r in state["archive"]["records"]], state["fronts"], state["rng"]


def test_kill_9_at_random_instants_of_a_search_then_resume_gives_the_uninterrupted_fronts(tiny_attention_set,
                                                                                          tmp_path):
    """Injects: SIGKILL at two random instants of a search, resuming after each. Checks: the same archive, fronts
    and RNG state as a run never interrupted, and exactly one log record per program."""
    whole = tmp_path / "whole"
    took = _timed(_search(tiny_attention_set, whole))
    run_dir = tmp_path / "killed"
    first, second = sorted(RNG.uniform(0.3, took, size=2))
    _kill_after(_search(tiny_attention_set, run_dir), first)
    if (run_dir / "checkpoint.json").is_file():
        _kill_after(["resume", run_dir], second - first)
        done = _evo("resume", run_dir)
    else:   # killed before its first checkpoint: nothing to resume, the run starts again
        shutil.rmtree(run_dir, ignore_errors=True)
        done = _evo(*_search(tiny_attention_set, run_dir))
    assert done.returncode == 0, done.stderr
    assert _final(run_dir) == _final(whole)
    ids = [r["id"] for r in runlog.read(run_dir / "log.jsonl")]
    assert len(ids) == len(set(ids)) == len(checkpoint.load(run_dir)["archive"]["records"])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished")
    aset = conftest.make_tiny_attention_set(folder)
    run_dir = folder / "run"
    done = _evo(*_search(aset, run_dir, programs=40, workers=1))
    assert done.returncode == 0, done.stderr
    return run_dir


@pytest.mark.parametrize("command", ["export", "report"])
def test_kill_9_during_export_and_report_then_again_gives_the_same_output(finished_run, tmp_path, command):
    """Injects: SIGKILL at two random instants of `evo export` / `evo report`. Checks: running it again succeeds
    and writes the same files (front.json identical for export) as an uninterrupted run."""
    clean, out = tmp_path / "clean", tmp_path / "killed"
    took = _timed([command, finished_run, "--out", clean])
    for instant in RNG.uniform(0.1, took, size=2):
        _kill_after([command, finished_run, "--out", out], instant)
        again = _evo(command, finished_run, "--out", out)
        assert again.returncode == 0, again.stderr
        assert _tree(out) == _tree(clean)
        if command == "export":
            assert (out / "front.json").read_text() == (clean / "front.json").read_text()


def _tree(folder: pathlib.Path) -> list[str]:
    """Returns the files under folder, relative, sorted (no temporary files may be among them)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ---- a full disk ----


@pytest.fixture
def small_disk(tmp_path):
    """Yields a function mounting a tmpfs of a given size at a fresh folder (skips where mounting is not allowed)."""
    mounted = []

    def mount(kilobytes: int) -> pathlib.Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here to fill a disk ({done.stderr.strip() or 'not root'})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.parametrize("share", [0.05, 0.35, 0.65])
def test_a_full_disk_at_whatever_write_stops_in_one_line_and_resumes_to_the_same_fronts(tiny_attention_set,
                                                                                      tmp_path, small_disk, share):
    """Injects: a run directory on a tmpfs of 5 %, 35 % or 65 % of what the run needs, so the disk fills at a
    different write (run log, checkpoint, early or late). Checks: exit 2 with one line saying no space is left;
    once the disk is grown, resume ends with the fronts of a run that never met a full disk."""
    whole = tmp_path / "whole"
    assert _evo(*_search(tiny_attention_set, whole, workers=1)).returncode == 0
    needs = sum(p.stat().st_size for p in whole.rglob("*") if p.is_file()) * 2   # a checkpoint is replaced whole
    kilobytes = max(8, int(needs * share / 1024))
    disk = small_disk(kilobytes)
    run_dir = disk / "run"
    done = _evo(*_search(tiny_attention_set, run_dir, workers=1))
    if done.returncode == 0:
        pytest.fail(f"a {kilobytes} KB disk did not fill up; the test needs a smaller one")
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in done.stderr
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    if (run_dir / "checkpoint.json").is_file():
        resumed = _evo("resume", run_dir)
    else:   # full before the first checkpoint: the run directory is not a run yet, start it again
        shutil.rmtree(run_dir, ignore_errors=True)
        resumed = _evo(*_search(tiny_attention_set, run_dir, workers=1))
    assert resumed.returncode == 0, resumed.stderr
    assert _final(run_dir) == _final(whole)


# ---- damaged caches ----


def _cached_set(model_dir, corpus, cache):
    done = _evo("capture", "--model", model_dir, "--corpus", corpus)
    assert done.returncode == 0, done.stderr
    return next((cache / "attention").iterdir())


@pytest.mark.parametrize("damage", ["flip", "truncate", "meta"])
def test_a_damaged_cached_set_is_captured_again_and_scores_as_a_clean_one(tiny_gpt2_dir, tmp_path, monkeypatch,
                                                                         damage):
    """Injects: bytes overwritten mid-tensor, the tensor file cut in half, or meta.json cut short in a cached
    capture. Checks: `evo score` warns that it captures the set again, exits 0, and prints the same scores as
    on the clean set; never NaN."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HEADCODE_CACHE", str(cache))
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(conftest.SENTENCES) + "\n", encoding="utf-8")
    folder = _cached_set(tiny_gpt2_dir, corpus, cache)
    clean = _evo("score", "seeds", "--model", tiny_gpt2_dir, "--corpus", corpus, "--workers", "1")
    assert clean.returncode == 0, clean.stderr
    tensors = folder / attention_set.TENSOR_FILE
    if damage == "flip":
        with open(tensors, "r+b") as f:
            f.seek(tensors.stat().st_size * 2 // 3)
            f.write(b"\x7c" * 64)
    elif damage == "truncate":
        os.truncate(tensors, tensors.stat().st_size // 2)
    else:
        meta = folder / attention_set.META_FILE
        meta.write_bytes(meta.read_bytes()[:100])
    again = _evo("score", "seeds", "--model", tiny_gpt2_dir, "--corpus", corpus, "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert "capturing it again" in again.stderr
    assert again.stdout == clean.stdout and "nan" not in again.stdout.lower()


def test_a_damaged_set_given_by_path_is_refused_with_the_rebuild_command(tiny_attention_set, tmp_path):
    """Injects: bytes overwritten in a set given with --attention-set. Checks: search exits 2 with one line that
    names the damaged sentence and the `evo capture ... --force` that makes it again; no run is started."""
    tensors = tiny_attention_set.path / attention_set.TENSOR_FILE
    with open(tensors, "r+b") as f:
        f.seek(tensors.stat().st_size - 40)
        f.write(b"\x00\x7e" * 8)
    done = _evo(*_search(tiny_attention_set, tmp_path / "run", workers=1))
    assert done.returncode == 2
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and "fails its checksum" in line and "evo capture" in line
    assert not (tmp_path / "run" / "checkpoint.json").exists()


# ---- a second process on a live run ----


def test_a_second_process_on_a_live_run_is_refused_and_the_first_finishes_cleanly(tiny_attention_set, tmp_path):
    """Injects: `evo resume R` and a second `evo search --run-dir R` while R's search runs. Checks: both exit 2
    in one line naming the holder; the search ends with one log record per program and the fronts of a run
    nobody disturbed."""
    whole = tmp_path / "whole"
    assert _evo(*_search(tiny_attention_set, whole)).returncode == 0
    run_dir = tmp_path / "live"
    proc = subprocess.Popen([sys.executable, "-m", "evo.cli", *map(str, _search(tiny_attention_set, run_dir))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoint.json").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the search ended before a second process could meet it"
    for second in (["resume", run_dir], _search(tiny_attention_set, run_dir)):
        refused = _evo(*second)
        assert refused.returncode == 2
        assert len(refused.stderr.strip().splitlines()) == 1 and "in use by process" in refused.stderr
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    ids = [r["id"] for r in runlog.read(run_dir / "log.jsonl")]
    assert len(ids) == len(set(ids)) == len(checkpoint.load(run_dir)["archive"]["records"])
    assert _final(run_dir) == _final(whole)


# ---- an LLM endpoint that dies or talks nonsense mid-run ----


_GOOD = ("import numpy as np\n\n\ndef attention(tokens):\n    n = len(tokens)\n"
         "    return np.eye(n, k=-1) + np.eye(n) * {w}\n")


@pytest.fixture
def model_set(tiny_gpt2_dir, tmp_path):
    """Returns an attention set captured from a tiny random GPT-2: heads no program fits exactly, so the offline
    edits keep finding programs that attend as no earlier one (on the synthetic set every head is fitted exactly
    at once, and later edits mostly repeat earlier programs, which are not counted: evo.search.novelty)."""
    corpus = tmp_path / "model-corpus.txt"
    corpus.write_text("\n".join(conftest.SENTENCES) + "\n", encoding="utf-8")
    out = tmp_path / "model-set"
    done = _evo("capture", "--model", tiny_gpt2_dir, "--corpus", corpus, "--out", out)
    assert done.returncode == 0, done.stderr
    return type("Captured", (), {"path": out})()


def _llm_search(server_url, aset, run_dir):
    return cli.main(["search", "--attention-set", str(aset.path), "--run-dir", str(run_dir), "--workers", "1",
                     "--max-programs", "40", "--batch-size", "4", "--operators", "mixed",
                     "--llm-base-url", server_url, "--llm-model", "gpt-4.1-mini", "--llm-timeout", "3",
                     "--llm-retries", "0"])


def test_an_llm_endpoint_that_dies_mid_run_leaves_a_finished_valid_search(model_set, tmp_path):
    """Injects: the LLM server dies (drops connections, then refuses them) after its third reply. Checks: the
    search still reaches its budget on the offline edits, exit 0, with a checkpoint that loads; a resume while
    the endpoint is dead is refused in one line, before anything runs."""
    served = []

    def script(body):
        served.append(1)
        if len(served) == 3:
            server.kill()
        return Reply(f"```python\n{_GOOD.format(w=0.001 * len(served))}```")

    server = ScriptedServer(script)
    server.__enter__()
    try:
        assert _llm_search(server.base_url, model_set, tmp_path / "run") == 0
    finally:
        server.kill()
    state = checkpoint.load(tmp_path / "run")
    assert state["spent"]["programs"] == 40 and len(served) == 3
    records = runlog.read(tmp_path / "run" / "log.jsonl")
    assert sum(r["operator"].startswith("symbolic") for r in records) > 0
    done = _evo("resume", tmp_path / "run", "--max-programs", "48")
    assert done.returncode == 2 and "cannot reach the LLM endpoint" in done.stderr
    assert checkpoint.load(tmp_path / "run")["spent"]["programs"] == 40


def test_an_llm_that_talks_nonsense_costs_only_failed_children(tiny_attention_set, tmp_path):
    """Injects: replies with no code, broken code, a hostile program and a wrong-shape program. Checks: the
    search finishes, every LLM child that ran is recorded as a result (no crash), and the fronts hold only
    programs that ran."""
    nonsense = [Reply("I am not sure what a head is."), Reply("```python\ndef attention(tokens:\n```"),
                Reply("```python\nimport os\n\ndef attention(tokens):\n    os.system('true')\n```"),
                Reply("```python\nimport numpy as np\n\ndef attention(tokens):\n    return np.ones((2, 3))\n```")]
    with ScriptedServer(lambda body: nonsense[body["seed"] % len(nonsense)]) as server:
        assert _llm_search(server.base_url, tiny_attention_set, tmp_path / "run") == 0
    records = runlog.read(tmp_path / "run" / "log.jsonl")
    llm = [r for r in records if r["operator"].startswith("llm")]
    assert all(not r["ok"] for r in llm)
    state = checkpoint.load(tmp_path / "run")
    ok = {r["id"] for r in records if r["ok"]}
    assert all(pid in ok for front in state["fronts"] for pid in front)


def test_resuming_a_run_whose_cached_set_was_damaged_captures_it_again(tiny_gpt2_dir, tmp_path, monkeypatch):
    """Injects: bytes overwritten in the cached attention set of a stopped run. Checks: `evo resume` warns that
    it captures the set again, accepts the new one (same fingerprint) and finishes with exit 0."""
    monkeypatch.setenv("HEADCODE_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(conftest.SENTENCES) + "\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    first = _evo("search", "--model", tiny_gpt2_dir, "--corpus", corpus, "--run-dir", run_dir, "--max-programs", 30,
                 "--workers", 1, "--seed", 4)
    assert first.returncode == 0, first.stderr
    folder = next((tmp_path / "cache" / "attention").iterdir())
    tensors = folder / attention_set.TENSOR_FILE
    with open(tensors, "r+b") as f:
        f.seek(tensors.stat().st_size // 2)
        f.write(b"\x7b" * 32)
    resumed = _evo("resume", run_dir, "--max-programs", 40)
    assert resumed.returncode == 0, resumed.stderr
    assert "damaged; capturing it again" in resumed.stderr
    assert checkpoint.load(run_dir)["spent"]["programs"] == 40
