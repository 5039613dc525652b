"""One process per run directory (evo.runlock): a second owner is refused in one line; kill -9 frees it."""

import os
import signal
import subprocess
import sys
import time

import pytest

from evo import runlock
from evo.errors import UserError

HOLD = ("import sys, time, pathlib; sys.path.insert(0, {root!r}); from evo import runlock\n"
        "with runlock.owned(pathlib.Path({run!r})):\n    print('held', flush=True); time.sleep(60)\n")


def _holder(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(root=root, run=str(tmp_path))],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_owner_is_refused_with_the_holders_pid_and_host(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(UserError) as err:
            with runlock.owned(tmp_path):
                pass
        message = str(err.value)
        assert f"process {proc.pid} on " in message and "\n" not in message
        assert runlock.holder(tmp_path)["pid"] == proc.pid and "still running" in runlock.note(tmp_path)
    finally:
        proc.kill()
        proc.wait()


def test_kill_9_leaves_no_stale_lock(tmp_path):
    proc = _holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert runlock.holder(tmp_path) is None and runlock.note(tmp_path) is None
    with runlock.owned(tmp_path):
        assert runlock.holder(tmp_path) is not None   # held now (a second open file of this process sees it)
    assert runlock.holder(tmp_path) is None


def test_a_second_search_on_a_live_run_directory_exits_2_in_one_line(tmp_path, capsys, tiny_attention_set):
    from evo import cli
    proc = _holder(tmp_path)
    try:
        code = cli.main(["search", "--attention-set", str(tiny_attention_set.path), "--run-dir", str(tmp_path),
                         "--max-programs", "30", "--workers", "1"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and f"process {proc.pid}" in err, err
        assert not (tmp_path / "config.json").exists()   # nothing of the live run was touched
    finally:
        proc.kill()
        proc.wait()
