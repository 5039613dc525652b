"""The untrusted side: what one forked child does to run one program behind the fences.

Order matters: limits, privileges and the audit hook are in place before the program's
first line (its module level included) runs. The child talks to the server only through
one pipe fd, in tags and raw bytes: b"M" loaded, b"R" + ndim + shape + float64 data per
sentence, b"E" + u32 length + text for an error.
"""

from __future__ import annotations

import builtins
import collections
import collections.abc
import functools
import itertools
import math
import os
import re
import resource
import signal
import string
import struct
import sys
import unicodedata
import warnings

import numpy as np

from evo import prelude
from evo.sandbox import rules as sandbox_rules

# Audit events a program may cause; every other one (open, import, socket, subprocess,
# os.*, ctypes.*, sys._getframe, object.__getattr__ on frames and code ...) is refused.
ALLOWED_EVENTS = frozenset({"builtins.id", "compile", "exec", "time.sleep"})
_PIPE_FD = 3
_NOBODY = 65534
_PR_SET_PDEATHSIG = 1
_warm = {"done": False, "prctl": None}

_WARM_PROGRAM = '''
import collections, functools, itertools, math, re, string, unicodedata
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
def attention(tokens):
    n = len(tokens)
    a = np.tril(np.ones((n, n))) + np.eye(n, k=-1) + same_token(tokens) + band(n, 2)
    a += one_hot(n, word_start(tokens)) + causal_uniform(n) + columns(tokens, is_punct)
    c = collections.Counter(tokens); re.findall(r"\\w+", " ".join(tokens))
    unicodedata.category("a"); string.punctuation; list(itertools.accumulate([1, 2]))
    np.linalg.norm(a); np.unique(tokens); np.pad(a, 1); np.einsum("ij->i", a)
    np.histogram([1, 2]); np.convolve([1, 2], [1]); np.fft.fft([1.0, 2.0]); np.isin([1], [1])
    np.random.default_rng(0).random(3); np.random.rand(2); np.argsort(a, kind="stable")
    sliding_window_view(np.arange(5), 2); np.polynomial.Polynomial([1, 2])(1.0)
    np.char.upper(["a"]); np.strings.upper(["a"]); np.rec.array([(1, 2)]); np.ma.masked_array([1])
    np.exceptions.AxisError; np.dtypes.Float64DType; np.array2string(a); repr(a); str(np.float64(1))
    np.where(a > 0, a, 0).cumsum(axis=1).max(); np.maximum.accumulate(a, axis=1); np.clip(a, 0, 1)
    np.linspace(0, 1, 5); np.exp(-np.abs(np.subtract.outer(np.arange(n), np.arange(n))))
    return a
'''


def warm_up() -> None:
    """Imports and exercises everything a program may use, so no child needs a late import."""
    if _warm["done"]:
        return
    try:
        import ctypes
        _warm["prctl"] = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        _warm["prctl"] = None   # no prctl (not Linux): the CPU rlimit is the backstop
    scope = program_globals()
    exec(compile(_WARM_PROGRAM, "<warm-up>", "exec"), scope)
    out = np.asarray(scope["attention"]([" a", " b", ",", " a"]))
    np.ascontiguousarray(out, dtype=np.float64).tobytes()
    _warm["done"] = True


def program_globals() -> dict:
    """Returns a fresh globals dict for a program: restricted builtins, np and the prelude."""
    safe = {k: v for k, v in vars(builtins).items()
            if k not in sandbox_rules.BLOCKED_NAMES or k == "__build_class__"}
    safe["__import__"] = _restricted_import
    scope = {"__name__": "program", "__builtins__": safe, "np": np}
    scope.update({name: getattr(prelude, name) for name in prelude.__all__})
    return scope


def _restricted_import(name, globals=None, locals=None, fromlist=(), level=0):
    """Returns the module for an allowed import; raises ImportError for any other."""
    if level:
        raise ImportError("relative import not allowed")
    if name in sandbox_rules.PRELUDE_MODULES:
        if not fromlist:
            raise ImportError("use `from evo.prelude import ...`")
        return prelude
    if name.split(".")[0] not in sandbox_rules.ALLOWED_MODULES:
        raise ImportError(f"import of `{name}` not allowed")
    return __import__(name, globals, locals, fromlist, level)


def main(source: str, sentences: list[list[str]], fd: int, seconds: float,
         memory_mb: int) -> None:
    """Runs the program on every sentence, reporting on fd; never returns (os._exit)."""
    try:
        _isolate(fd, seconds, len(sentences), memory_mb)
        _run(source, sentences, memory_mb)
    except BaseException as err:  # noqa: BLE001 - must report, never unwind into the server
        _error(f"sandbox setup failed: {type(err).__name__}: {err}")
    os._exit(0)


def _isolate(fd: int, seconds: float, n_sentences: int, memory_mb: int) -> None:
    """Puts the fences up: parent-death signal, fds, rlimits, privileges, quiet numerics."""
    if _warm["prctl"] is not None:
        _warm["prctl"](_PR_SET_PDEATHSIG, signal.SIGKILL)
    devnull = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(devnull, target)
    if fd != _PIPE_FD:
        os.dup2(fd, _PIPE_FD)
    os.closerange(_PIPE_FD + 1, 1 << 16)
    base = _address_space()
    _limit(resource.RLIMIT_AS, base + memory_mb * (1 << 20) if base else None)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_FSIZE, 0)
    _limit(resource.RLIMIT_CPU, int(seconds * (n_sentences + 1)) + 2)
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(_NOBODY)
        os.setuid(_NOBODY)
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")


def _address_space() -> int | None:
    """Returns this process's virtual memory size in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("VmSize:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024


def _limit(which: int, value: int | None) -> None:
    """Lowers one resource limit to value (never above the current hard limit)."""
    if value is None:
        return
    _, hard = resource.getrlimit(which)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(which, (value, value))


def _install_hook() -> list[bool]:
    """Returns the switch that lets the runner read tracebacks; installs the audit hook."""
    trusted = [False]
    allowed = ALLOWED_EVENTS

    def hook(event: str, args: tuple) -> None:
        if event in allowed or (trusted[0] and event == "object.__getattr__"):
            return
        raise PermissionError(f"{event} blocked by the sandbox")

    sys.addaudithook(hook)
    return trusted


def _run(source: str, sentences: list[list[str]], memory_mb: int) -> None:
    """Loads the program, then sends one matrix per sentence, or the first error."""
    asarray, float64, pack = np.asarray, np.float64, struct.pack
    reseed = np.random.seed
    try:
        code = compile(source, "<program>", "exec")
    except (SyntaxError, ValueError) as err:
        _error(f"syntax error at line {getattr(err, 'lineno', '?')}: {err}")
    scope = program_globals()
    trusted = _install_hook()
    where = "while loading the program"
    try:
        exec(code, scope)
        fn = scope.get("attention")
        if not callable(fn):
            _error("`attention` is not a function")
        _send(b"M")
        for i, tokens in enumerate(sentences):
            where = f"on sentence {i}"
            reseed(0)   # each sentence's result depends on its tokens only
            arr = asarray(fn(list(tokens)))
            if arr.dtype.kind not in "biuf":
                _error(f"returned {arr.dtype} values {where}, not real numbers")
            arr = asarray(arr, dtype=float64, order="C")
            n = len(tokens)
            if n == 0 and arr.size == 0:
                arr = arr.reshape(0, 0)   # [] is a fine answer for an empty sentence
            head = b"R" + pack("<B", arr.ndim) + pack(f"<{arr.ndim}q", *arr.shape)
            _send(head + arr.tobytes() if arr.shape == (n, n) else head)
    except MemoryError:
        _error(f"memory limit exceeded ({memory_mb} MB) {where}")
    except BaseException as err:  # noqa: BLE001 - a program's failure is a result
        _error(_describe(err, where, trusted))


def _describe(err: BaseException, where: str, trusted: list[bool]) -> str:
    """Returns 'exception Name: message on sentence i at line N' for a program's exception."""
    try:
        text = str(err)
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not hide the failure
        text = "<unprintable message>"
    name = type(err).__name__
    line = _program_line(err.__traceback__, trusted)
    msg = f"exception {name}: {text}" if text else f"exception {name}"
    return f"{' '.join(msg.split())[:200]} {where}" + (f" at line {line}" if line else "")


def _program_line(tb, trusted: list[bool]) -> int | None:
    """Returns the line of the deepest traceback entry inside the program, or None."""
    line = None
    trusted[0] = True
    try:
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<program>":
                line = tb.tb_lineno
            tb = tb.tb_next
    finally:
        trusted[0] = False
    return line


def _send(data: bytes) -> None:
    """Writes all of data to the server pipe; ends the child if the server is gone."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(_PIPE_FD, view):]
    except OSError:
        os._exit(1)


def _error(text: str) -> None:
    """Sends one error line to the server and ends the child."""
    data = text.encode("utf-8", "replace")[:4000]
    _send(b"E" + struct.pack("<I", len(data)) + data)
    os._exit(0)
