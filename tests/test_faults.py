"""Faults injected, not reasoned about: a full disk met while appending to the run log."""

import pathlib

import pytest

from evo.errors import UserError
from evo.search import runlog

FULL = pathlib.Path("/dev/full")   # every write fails with ENOSPC: a full disk on demand


@pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this machine to inject a full disk")
def test_a_full_disk_while_appending_to_the_run_log_is_one_line():
    with pytest.raises(UserError) as err:
        runlog.append(FULL, [{"id": "p000001", "source": "x" * 10_000}])
    message = str(err.value)
    assert "No space left on device" in message and "evo resume" in message and "\n" not in message
