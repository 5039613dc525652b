"""The search on a real Dask cluster: same fronts as loky, a killed worker costs only its tasks, resume across backends."""

import json
import os
import shutil
import signal
import threading
import time

import pytest

from evo import cli
from evo.search import checkpoint

distributed = pytest.importorskip("distributed")


def _search(aset, run_dir, *extra, max_programs=90):
    return ["search", "--attention-set", str(aset.path), "--run-dir", str(run_dir), "--max-programs",
            str(max_programs), "--requests-per-generation", "8", "--workers", "2", "--seed", "11", *extra]


def _final(run_dir):
    state = checkpoint.load(run_dir)
    return [(r["id"], r["key"], r["iou"]) for r in state["archive"]["records"]], state["fronts"]


@pytest.fixture
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as made:
        yield made


def _kill_one_worker_when(log, cluster, lines: int, killed: list) -> None:
    """Kills a worker process (SIGKILL) once the run log has `lines` lines; records how far the run was."""
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        pids = list(client.run(os.getpid).values())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if log.exists() and len(log.read_text().splitlines()) >= lines:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(len(log.read_text().splitlines()))
                return
            time.sleep(0.02)


def test_dask_run_survives_a_killed_worker_and_equals_a_loky_run(tiny_attention_set, tmp_path, cluster):
    assert cli.main(_search(tiny_attention_set, tmp_path / "loky")) == 0
    run_dir, killed = tmp_path / "dask", []
    killer = threading.Thread(target=_kill_one_worker_when, args=(run_dir / "log.jsonl", cluster, 40, killed))
    killer.start()
    assert cli.main(_search(tiny_attention_set, run_dir, "--backend", "dask",
                            "--scheduler", cluster.scheduler_address)) == 0
    killer.join()
    assert killed and killed[0] < 90, "the worker was not killed while the search ran"
    assert _final(run_dir) == _final(tmp_path / "loky")


def test_a_run_begun_on_loky_resumes_on_a_local_dask_cluster(tiny_attention_set, tmp_path):
    begun = tmp_path / "begun"
    assert cli.main(_search(tiny_attention_set, begun, max_programs=50)) == 0
    shutil.copytree(begun, tmp_path / "on-loky")
    assert cli.main(["resume", str(tmp_path / "on-loky"), "--max-programs", "90"]) == 0
    assert cli.main(["resume", str(begun), "--max-programs", "90", "--backend", "dask"]) == 0
    assert json.loads((begun / "config.json").read_text())["backend"] == "loky"   # the run's default stays
    assert len(_final(begun)[0]) == 90
    assert _final(begun) == _final(tmp_path / "on-loky")


def test_a_scheduler_that_is_not_there_is_one_line_and_writes_no_run(tiny_attention_set, tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert cli.main(_search(tiny_attention_set, run_dir, "--backend", "dask", "--scheduler", "tcp://127.0.0.1:9")) == 2
    err = capsys.readouterr().err.strip()
    assert "error: could not reach the Dask scheduler at tcp://127.0.0.1:9" in err and "\n" not in err
    assert not (run_dir / "checkpoint.json").exists()


def test_a_scheduler_that_goes_away_keeps_the_last_checkpoint(tiny_attention_set, tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert cli.main(_search(tiny_attention_set, run_dir, max_programs=40)) == 0
    before = (run_dir / "checkpoint.json").read_bytes()
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=40)
    address = cluster.scheduler_address
    closer = threading.Timer(0.5, cluster.close)
    closer.start()
    status = cli.main(["resume", str(run_dir), "--max-programs", "100000", "--backend", "dask",
                       "--scheduler", address])
    closer.join()
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "error: lost the Dask scheduler" in err[-1] and not any("Traceback" in line for line in err)
    state = checkpoint.load(run_dir)          # whole, and at or past where it was
    assert len(state["archive"]["records"]) >= 40
    assert before == (run_dir / "checkpoint.json").read_bytes() or state["generation"] >= 1
