"""Static check and isolated execution of untrusted attention programs.

`run` sends a program to this process's fork server (`evo.sandbox.worker`, started on
first use with numpy and the prelude already imported), which runs it in a fresh child
per program and returns raw float64 bytes. Safe to call from any process, including
joblib/loky workers, and from several processes at once (each has its own server);
calls from threads of one process take turns. Nothing from a program is unpickled here.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import pathlib
import select
import struct
import subprocess
import sys
import threading
import time

import numpy as np

from evo.sandbox import rules as sandbox_rules
from evo.errors import UserError

# The interpreter the servers run, made absolute now: servers start in "/", where a relative
# sys.executable (Python launched through a relative PATH entry, `.venv/bin`) names nothing.
_PYTHON = os.path.abspath(sys.executable)
_START_TIMEOUT = 120.0   # seconds for a server to import numpy and report ready
_SLACK = 30.0            # seconds past the program's own limits before the server counts as hung


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one program may use; every limit ends the program with a one-line reason."""

    seconds: float = 2.0            # per sentence (and for loading the module), wall clock
    memory_mb: int = 1024           # address space a program may add on top of numpy's
    max_source_chars: int = 20_000  # longer sources fail the static check
    total_seconds: float | None = None  # for all sentences together; None: only per sentence

    def __post_init__(self):
        if not self.seconds > 0:
            raise UserError(f"sandbox time limit must be positive, got {self.seconds} s")
        if not self.memory_mb >= 64:
            raise UserError(f"sandbox memory limit must be at least 64 MB, got {self.memory_mb}")
        if not self.max_source_chars > 0:
            raise UserError(f"max_source_chars must be positive, got {self.max_source_chars}")
        if self.total_seconds is not None and not self.total_seconds > 0:
            raise UserError(f"total time limit must be positive, got {self.total_seconds} s")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The result of running one program on every sentence."""

    ok: bool
    matrices: list[np.ndarray] | None   # float64, one (n, n) per sentence, raw (not normalised)
    error: str | None                   # one line, e.g. "timeout after 2 s on sentence 17"
    seconds: float = 0.0                # wall clock for the whole call


def check(source: str, limits: Limits = Limits()) -> str | None:
    """Returns None when the program passes the static check, else the one-line reason."""
    return sandbox_rules.check_source(source, limits.max_source_chars)


def run(source: str, sentences: list[list[str]], limits: Limits = Limits()) -> Outcome:
    """Returns the program's raw (n, n) matrix for every sentence, or the reason it failed."""
    start = time.perf_counter()
    _check_sentences(sentences)
    reason = check(source, limits)
    if reason:
        return Outcome(False, None, reason, time.perf_counter() - start)
    return _execute(source, sentences, limits, start)


def run_unchecked(source: str, sentences: list[list[str]], limits: Limits = Limits()) -> Outcome:
    """Returns `run` without the static check: for testing that the run-time fences hold alone."""
    _check_sentences(sentences)
    return _execute(source, sentences, limits, time.perf_counter())


def _execute(source: str, sentences, limits: Limits, start: float) -> Outcome:
    """Returns the Outcome of running an (already checked) program in the fork server."""
    fields = {
        "source": source, "sentences": [list(s) for s in sentences],
        "seconds": limits.seconds, "memory_mb": limits.memory_mb,
        "total_seconds": limits.total_seconds,
    }
    from evo import linguistic  # lazy: spaCy loads only for programs that use its helpers

    if linguistic.uses(source):
        try:
            fields["annotations"] = [a.to_json() for a in linguistic.for_sentences(fields["sentences"])]
        except UserError as err:
            return Outcome(False, None, f"the program uses the linguistic helpers, which are not available: {err}",
                           time.perf_counter() - start)
    from evo import affinity

    if affinity.uses(source):
        try:
            fields["affinity"] = [[model, layer, head, [m.round(5).tolist() for m in affinity.for_sentences(
                                       fields["sentences"], model, layer, head, far, context)], far, context]
                                  for model, layer, head, far, context in affinity.calls(source)]
        except (UserError, ValueError, IndexError, SyntaxError, RecursionError) as err:
            return Outcome(False, None, f"affinity: {err}", time.perf_counter() - start)
    request = json.dumps(fields).encode()
    budget = limits.seconds * (len(sentences) + 1) + _SLACK
    if limits.total_seconds is not None:
        budget = min(budget, limits.total_seconds + limits.seconds + _SLACK)
    header, payload = _ask(request, budget)
    return _outcome(header, payload, sentences, time.perf_counter() - start)


def _check_sentences(sentences) -> None:
    """Raises UserError unless sentences is a list of lists of str."""
    if not isinstance(sentences, (list, tuple)):
        raise UserError(f"sentences must be a list of token lists, not {type(sentences).__name__}")
    for i, tokens in enumerate(sentences):
        if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
            raise UserError(f"sentence {i} must be a list of str tokens")


def _outcome(header: dict, payload: bytes, sentences, seconds: float) -> Outcome:
    """Returns the Outcome for a server reply, re-checking every shape against the tokens."""
    if not header.get("ok"):
        return Outcome(False, None, str(header.get("error") or "program failed"), seconds)
    sizes = [len(s) for s in sentences]
    if header.get("sizes") != sizes or len(payload) != 8 * sum(n * n for n in sizes):
        return Outcome(False, None, "malformed reply from the sandbox server", seconds)
    flat = np.frombuffer(bytearray(payload), dtype="<f8")
    matrices, at = [], 0
    for n in sizes:
        matrices.append(flat[at:at + n * n].reshape(n, n))   # (n, n)
        at += n * n
    return Outcome(True, matrices, None, seconds)


class _ServerError(Exception):
    """The fork server died, hung or broke the protocol (not the program's fault)."""


def _ask(request: bytes, budget: float) -> tuple[dict, bytes]:
    """Returns the server's reply; restarts a dead server once, then reports the failure."""
    with _LOCK:
        for attempt in (1, 2):
            try:
                return _server().ask(request, budget)
            except _ServerError as err:
                _drop_server()
                if attempt == 2:
                    return {"ok": False, "error": f"sandbox server failed: {err}"}, b""
    raise AssertionError("unreachable")


class _Server:
    """One fork server process (`python -m evo.sandbox.worker`) owned by this process."""

    def __init__(self):
        root = str(pathlib.Path(__file__).resolve().parents[2])
        env = {"PATH": os.defpath, "PYTHONPATH": root, "PYTHONHASHSEED": "0",
               "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        # The environment is scrubbed: a program that escaped could read no secrets from it.
        self.proc = subprocess.Popen(
            [_PYTHON, "-s", "-m", "evo.sandbox.worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env, cwd="/", close_fds=True)
        self.out = self.proc.stdout.fileno()
        if self._read(1, time.monotonic() + _START_TIMEOUT) != b"R":
            raise _ServerError("did not start")

    def ask(self, request: bytes, budget: float) -> tuple[dict, bytes]:
        """Returns (header, payload) for one request."""
        deadline = time.monotonic() + budget
        try:
            self.proc.stdin.write(struct.pack("<I", len(request)) + request)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            raise _ServerError(f"cannot send the program ({err})") from err
        (size,) = struct.unpack("<I", self._read(4, deadline))
        header = json.loads(self._read(size, deadline))
        (size,) = struct.unpack("<Q", self._read(8, deadline))
        return header, self._read(size, deadline)

    def _read(self, k: int, deadline: float) -> bytes:
        """Returns exactly k bytes from the server, or raises _ServerError."""
        buf = bytearray()
        while len(buf) < k:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.out], [], [], left)[0]:
                raise _ServerError("stopped responding")
            chunk = os.read(self.out, min(k - len(buf), 1 << 24))
            if not chunk:
                raise _ServerError(f"exited with status {self.proc.poll()}")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        """Stops the server (closing its stdin ends it; a hung one is killed)."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


_LOCK = threading.Lock()
_SERVERS: dict[int, _Server] = {}   # by owning pid: a forked process never uses its parent's


def _server() -> _Server:
    """Returns this process's fork server, starting it on first use."""
    pid = os.getpid()
    if pid not in _SERVERS:
        _SERVERS.clear()
        _SERVERS[pid] = _Server()
    return _SERVERS[pid]


def _drop_server() -> None:
    """Stops and forgets this process's server (a fresh one starts on next use)."""
    server = _SERVERS.pop(os.getpid(), None)
    if server is not None:
        server.close()


def shutdown() -> None:
    """Stops this process's fork server, if any (also done at exit)."""
    with _LOCK:
        _drop_server()


atexit.register(shutdown)
