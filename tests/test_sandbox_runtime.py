"""The run-time fences hold on their own: programs that skip the static check
(`sandbox.run_unchecked`) and escape to the os module still cannot touch files,
processes, the network, the environment or the server."""

import os
import pathlib

import numpy as np
import pytest

from evo import sandbox

CANARY = pathlib.Path("/tmp/headcode-runtime-canary")
LIMITS = sandbox.Limits(seconds=1.0, memory_mb=256)
SENTENCES = [["<bos>", " a", " b"]]

# The classic escape the static check forbids: object.__subclasses__() -> os globals.
OS = '''
def _os():
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__
'''


def _unchecked(body: str) -> sandbox.Outcome:
    """Returns the outcome of a program made of the escape helper plus body, unchecked."""
    return sandbox.run_unchecked(OS + body, SENTENCES, LIMITS)


@pytest.fixture(autouse=True)
def _no_canary():
    CANARY.unlink(missing_ok=True)
    yield
    assert not CANARY.exists(), "a program wrote a file"


@pytest.mark.parametrize("body, reason", [
    ("def attention(t):\n    _os()['__builtins__']['open']('%s', 'w')\n" % CANARY,
     "open blocked by the sandbox"),
    ("def attention(t):\n    _os()['__builtins__']['open']('/etc/passwd').read()\n",
     "open blocked by the sandbox"),
    ("def attention(t):\n    _os()['system']('touch %s')\n" % CANARY, "os.system blocked"),
    ("def attention(t):\n    _os()['fork']()\n", "os.fork blocked"),
    ("def attention(t):\n    _os()['kill'](_os()['getppid'](), 9)\n", "os.kill blocked"),
    ("def attention(t):\n    _os()['sys'].modules['ctypes'].CDLL(None)\n", "ctypes.dlopen blocked"),
    ("def attention(t):\n    _os()['sys']._getframe()\n", "sys._getframe blocked"),
    ("def attention(t):\n    _os()['__builtins__']['__import__']('socket')\n", "import blocked"),
    ("def attention(t):\n    _os()['sys'].settrace(None)\n", "sys.settrace blocked"),
    ("def attention(t):\n    np.save('%s', np.ones(2))\n" % CANARY, "open blocked"),
    # numpy's C code turns the blocked open into a SystemError naming fromfile
    ("def attention(t):\n    np.fromfile('/etc/passwd')\n", "fromfile"),
    ("def attention(t):\n    try:\n        1 / 0\n    except ZeroDivisionError as e:\n"
     "        return e.__traceback__.tb_frame.f_back.f_globals\n", "object.__getattr__ blocked"),
    ("def attention(t):\n    _os()['__builtins__']['__import__']('subprocess').run(['true'])\n",
     "blocked by the sandbox"),
])
def test_escaped_program_is_stopped_by_the_audit_hook(body, reason):
    outcome = _unchecked(body)
    assert not outcome.ok
    assert reason in outcome.error, outcome.error


def test_restricted_import_refuses_modules_outside_the_allowed_list():
    outcome = sandbox.run_unchecked("import os\ndef attention(t):\n    return 1\n", SENTENCES, LIMITS)
    assert not outcome.ok and "import of `os` not allowed" in outcome.error


def test_environment_is_scrubbed_of_secrets(monkeypatch):
    monkeypatch.setenv("HEADCODE_SECRET_CANARY", "s3cret")
    sandbox.shutdown()   # the next server starts with the secret in our environment
    outcome = _unchecked("def attention(t):\n    env = _os()['environ']\n    n = len(t)\n"
                         "    return np.full((n, n), float(len(env.get('HEADCODE_SECRET_CANARY', ''))))\n")
    assert outcome.ok, outcome.error
    assert outcome.matrices[0].sum() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="privileges are dropped only when run as root")
def test_program_runs_as_nobody_when_started_as_root():
    outcome = _unchecked("def attention(t):\n    n = len(t)\n"
                         "    return np.full((n, n), float(_os()['getuid']()))\n")
    assert outcome.ok, outcome.error
    assert outcome.matrices[0][0, 0] == 65534


def test_thread_left_running_dies_with_the_program():
    outcome = _unchecked("def _spin():\n    while True:\n        pass\n"
                         "def attention(t):\n    th = _os()['sys'].modules['threading']\n"
                         "    th.Thread(target=_spin, daemon=True).start()\n"
                         "    return np.eye(len(t))\n")
    assert outcome.ok, outcome.error
    assert sandbox.run("def attention(t):\n    return np.eye(len(t))\n", SENTENCES).ok


def test_loop_with_signals_ignored_and_blocked_still_times_out():
    outcome = _unchecked("def attention(t):\n    sig = _os()['sys'].modules['signal']\n"
                         "    for s in (sig.SIGTERM, sig.SIGINT, sig.SIGALRM, sig.SIGXCPU):\n"
                         "        sig.signal(s, sig.SIG_IGN)\n"
                         "    sig.pthread_sigmask(sig.SIG_BLOCK, set(sig.Signals))\n"
                         "    while True:\n        pass\n")
    assert not outcome.ok and outcome.error == "timeout after 1 s on sentence 0"


def test_forged_bytes_on_the_result_pipe_are_rejected():
    outcome = _unchecked("def attention(t):\n    _os()['write'](3, b'R\\x02' + b'\\xff' * 16)\n"
                         "    return np.eye(len(t))\n")
    assert not outcome.ok and "wrong shape" in outcome.error


def test_writes_to_the_servers_protocol_fds_go_nowhere():
    outcome = _unchecked("def attention(t):\n    _os()['write'](1, b'junk' * 100)\n"
                         "    _os()['write'](2, b'junk')\n    return np.eye(len(t))\n")
    assert outcome.ok, outcome.error
    assert sandbox.run("def attention(t):\n    return np.eye(len(t))\n", SENTENCES).ok


def test_a_python_found_through_a_relative_path_entry_still_starts_the_sandbox(tmp_path):
    import subprocess
    import sys

    python = pathlib.Path(sys.executable).resolve()
    root = pathlib.Path(sandbox.__file__).resolve().parents[2]
    code = ("import sys; from evo import sandbox; assert not sys.executable.startswith('/'), sys.executable; "
            "out = sandbox.run('def attention(tokens):\\n    return np.eye(len(tokens))\\n', [['a', 'b']]); "
            "print(out.ok, out.error, out.matrices[0].shape if out.ok else None)")
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python3").symlink_to(python)   # what `PATH=.venv/bin:$PATH python3` finds
    env = {"PATH": "venv/bin", "PYTHONPATH": str(root), "HOME": str(tmp_path)}
    done = subprocess.run(["python3", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-800:]
    assert done.stdout.split() == ["True", "None", "(2,", "2)"], done.stdout
