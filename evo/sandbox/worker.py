"""The sandbox's trusted side: a fork server that runs each untrusted program in a fresh child.

`python -m evo.sandbox.worker` starts a server with numpy, the prelude and the allowed
modules already imported. For every request it forks a child (a clean copy: nothing a
program did survives it), which drops privileges, installs resource limits and an audit
hook, runs the program on every sentence and writes raw float64 bytes to a pipe. The
server watches the child with a deadline per sentence and SIGKILLs it when it runs over.
Nothing from a child is ever unpickled: its pipe carries tags, shapes and raw numbers.

Wire format, server side (all integers little-endian):
  request  = u32 length + JSON {"source", "sentences", "seconds", "memory_mb", "total_seconds"}
  response = u32 length + JSON {"ok", "error", "sizes"} + u64 length + float64 payload
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import sys
import time

# Before numpy loads (in sandbox_child): one BLAS thread, so a forked child inherits no thread pool.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from evo.prelude import content as prelude_content  # noqa: E402
from evo.prelude import linguistic as prelude_linguistic  # noqa: E402
from evo.sandbox import child as sandbox_child  # noqa: E402


_ERROR_CAP = 4096   # bytes of error text a child may send


class _Stop(Exception):
    """The child broke off: timeout, death or malformed output; carries the one-line reason."""


def execute(source: str, sentences: list[list[str]], seconds: float, memory_mb: int,
            total_seconds: float | None = None) -> tuple[dict, bytes]:
    """Returns (header, payload) from running the program in a fresh forked child.

    No static check happens here (that is `evo.sandbox.check`); the run-time fences do.
    """
    sandbox_child.warm_up()
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns
        os.close(r)
        sandbox_child.main(source, sentences, w, seconds, memory_mb)
    os.close(w)
    started = time.monotonic()
    try:
        sizes, chunks = _supervise(pid, r, sentences, seconds, total_seconds, started)
        header = {"ok": True, "error": None, "sizes": sizes}
        return header, b"".join(chunks)
    except _Stop as stop:
        return {"ok": False, "error": str(stop), "sizes": []}, b""
    finally:
        _reap(pid)
        os.close(r)


def _reap(pid: int) -> None:
    """Kills the child if it still runs and collects it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    os.waitpid(pid, 0)


def _supervise(pid: int, r: int, sentences: list[list[str]], seconds: float,
               total_seconds: float | None, started: float) -> tuple[list[int], list[bytes]]:
    """Returns the sentence sizes and raw matrices the child sent; raises _Stop on failure."""
    stream = _Stream(pid, r)
    total_end = started + total_seconds if total_seconds else float("inf")
    where = "while loading the program"
    stream.limit(seconds, total_end, where, seconds, total_seconds)
    _expect_loaded(stream)
    sizes, chunks = [], []
    for i, tokens in enumerate(sentences):
        n, where = len(tokens), f"on sentence {i}"
        stream.limit(seconds, total_end, where, seconds, total_seconds)
        tag = stream.read(1)
        if tag == b"E":
            raise _Stop(_read_error(stream))
        if tag != b"R":
            raise _Stop(f"malformed output {where}")
        (ndim,) = struct.unpack("<B", stream.read(1))
        if ndim > 64:
            raise _Stop(f"malformed output {where}")
        shape = struct.unpack(f"<{ndim}q", stream.read(8 * ndim))
        if shape != (n, n):
            raise _Stop(f"wrong shape {_shape_text(shape)} for {n} tokens {where}")
        chunks.append(stream.read(8 * n * n))
        sizes.append(n)
    return sizes, chunks


def _expect_loaded(stream: "_Stream") -> None:
    """Reads the child's 'module loaded' mark, or raises _Stop with its error."""
    tag = stream.read(1)
    if tag == b"E":
        raise _Stop(_read_error(stream))
    if tag != b"M":
        raise _Stop("malformed output while loading the program")


def _read_error(stream: "_Stream") -> str:
    """Returns the child's one-line error text."""
    (size,) = struct.unpack("<I", stream.read(4))
    if size > _ERROR_CAP:
        raise _Stop(f"output too large: error text of {size:,} bytes {stream.where}")
    text = stream.read(size).decode("utf-8", "replace")
    return " ".join(text.split())[:300] or f"program failed {stream.where}"


def _shape_text(shape: tuple[int, ...]) -> str:
    """Returns a shape the way numpy prints it: (3, 5), (7,), ()."""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


class _Stream:
    """Reads exact byte counts from the child's pipe under a deadline."""

    def __init__(self, pid: int, fd: int):
        self.pid, self.fd, self.buf = pid, fd, bytearray()
        self.deadline, self.where, self.reason = 0.0, "", ""

    def limit(self, seconds: float, total_end: float, where: str, per: float,
              total: float | None) -> None:
        """Starts a new phase: the next reads must finish within `seconds` (and the total budget)."""
        now = time.monotonic()
        self.where = where
        if now + seconds <= total_end:
            self.deadline, self.reason = now + seconds, f"timeout after {per:g} s {where}"
        else:
            self.deadline, self.reason = total_end, f"timeout: total limit {total:g} s reached {where}"

    def read(self, k: int) -> bytes:
        """Returns exactly k bytes, or raises _Stop on timeout or when the child has ended."""
        while len(self.buf) < k:
            left = self.deadline - time.monotonic()
            if left <= 0 or not _readable(self.fd, left):
                raise _Stop(self.reason)
            chunk = os.read(self.fd, max(1 << 16, k - len(self.buf)))
            if not chunk:
                raise _Stop(_death(self.pid, self.where))
            self.buf += chunk
        out = bytes(self.buf[:k])
        del self.buf[:k]
        return out


def _readable(fd: int, seconds: float) -> bool:
    """Returns whether fd becomes readable (data or EOF) within the given seconds."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(max(1, int(seconds * 1000))))


def _death(pid: int, where: str) -> str:
    """Returns why the child ended before sending everything."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return f"CPU time limit exceeded {where}"
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else "?"
        hint = ", possibly out of memory" if sig in (signal.SIGKILL, signal.SIGSEGV,
                                                      signal.SIGABRT, signal.SIGBUS) else ""
        return f"crashed with signal {sig} ({name}{hint}) {where}"
    return f"program process exited with status {os.WEXITSTATUS(status)} {where}"


def _read_exact(fd: int, k: int) -> bytes | None:
    """Returns k bytes from a blocking fd, or None at end of file."""
    buf = bytearray()
    while len(buf) < k:
        chunk = os.read(fd, k - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _write_all(fd: int, data: bytes) -> None:
    """Writes all of data to fd."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def serve(fd_in: int, fd_out: int) -> None:
    """Answers requests from fd_in on fd_out until fd_in closes."""
    while True:
        raw = _read_exact(fd_in, 4)
        if raw is None:
            return
        body = _read_exact(fd_in, struct.unpack("<I", raw)[0])
        if body is None:
            return
        req = json.loads(body)
        _hand_over(req["sentences"], req.get("annotations"), req.get("affinity"))
        header, payload = execute(req["source"], req["sentences"], req["seconds"],
                                  req["memory_mb"], req.get("total_seconds"))
        head = json.dumps(header).encode()
        _write_all(fd_out, struct.pack("<I", len(head)) + head
                   + struct.pack("<Q", len(payload)) + payload)


def _hand_over(sentences, annotations, affinities=None) -> None:
    """Gives the prelude this request's linguistic annotations and affinities (the forked child inherits them)."""
    prelude_linguistic._KNOWN.clear()   # a forked child holds only its own request's sentences
    prelude_content._KNOWN.clear()
    for tokens, a in zip(sentences, annotations or ()):
        prelude_linguistic.provide(tokens, prelude_linguistic.Annotation.from_json(a))
    for model, layer, head, per_sentence, *which in affinities or ():
        far, context = (list(which) + [False, 0][len(which):])[:2]
        for tokens, values in zip(sentences, per_sentence):
            prelude_content.provide(tokens, model, layer, head, values, bool(far), int(context))


def _unread(tokens, model, layer, head, at_distance=False, context=0):
    said = f"affinity in context {context}" if context else "affinity at distance" if at_distance else "affinity"
    raise LookupError(f"no {said} of {model} {layer}.{head} was handed over for this sentence")


def _unannotated(tokens):
    raise LookupError("this sentence has no linguistic annotation (the run had none to give: "
                      "pip install 'headcode[linguistic]')")


def main() -> None:
    """Runs the fork server on stdin/stdout (protocol only; prints go to stderr)."""
    # Ctrl-C reaches the whole process group: the caller decides what stops; this server ends
    # when its stdin closes, so it never prints a KeyboardInterrupt of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd_in, fd_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    prelude_linguistic._PARSER = _unannotated
    prelude_content._READER = _unread
    sandbox_child.warm_up()
    _write_all(fd_out, b"R")
    serve(fd_in, fd_out)


if __name__ == "__main__":
    main()
