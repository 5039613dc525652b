"""Where the work runs: joblib's loky processes on this machine, or a Dask cluster.

    with parallel.Pool("loky", workers=2) as pool:          # or Pool("dask", 4, "tcp://host:8786")
        results = pool.starmap(function, [(a, b), (c, d)])  # in order; arguments must pickle

One Pool is made per command and handed to everything that fans work out (evaluating
programs, the offline operator's edits), so a run uses one set of workers for both.
Workers keep what they load (an attention set, packed targets) between tasks; tasks only
carry paths and programs, never the set itself.

With `dask` and no scheduler address (and no DASK_SCHEDULER_ADDRESS) the pool starts a
`distributed.LocalCluster` of `workers` single-threaded processes. A task on a worker that
dies is run again on another (the scheduler reschedules it; an exception is retried
`retries` times). A scheduler that cannot be reached, or goes away, is a UserError.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import joblib

from evo.errors import UserError

BACKENDS = ("loky", "dask", "threading", "sequential")
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
log = logging.getLogger("headcode.parallel")


@dataclasses.dataclass
class Pool:
    """A set of workers to run picklable tasks on, in order."""

    backend: str = "loky"
    workers: int = 1             # processes (loky, a LocalCluster) or threads; ignored with a scheduler
    scheduler: str | None = None  # a Dask scheduler's address; None: DASK_SCHEDULER_ADDRESS or a LocalCluster
    retries: int = 2             # Dask: times a task that raised is run again
    connect_timeout: float = 10.0  # Dask: seconds to reach the scheduler

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise UserError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.workers < 1:
            raise UserError(f"workers must be at least 1, got {self.workers}")
        if self.scheduler and self.backend != "dask":
            raise UserError(f"--scheduler needs --backend dask (the backend is {self.backend})")
        self._client = None
        self._cluster = None
        self._borrowed = False
        self._quiet = None

    def __enter__(self) -> "Pool":
        if self.backend == "dask":
            self._connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def size(self) -> int:
        """Returns how many tasks run at once (a cluster's worker threads when connected)."""
        if self._client is not None:
            try:
                return max(1, sum(self._client.nthreads().values()))
            except (OSError, TypeError, TimeoutError):
                return self.workers
        return self.workers

    @property
    def local(self) -> bool:
        """Returns whether tasks run in the calling thread (one worker, or the sequential backend)."""
        return self.backend == "sequential" or (self.workers == 1 and self.backend != "dask")

    def starmap(self, function, arguments: list[tuple]) -> list:
        """Returns [function(*args) for args in arguments], run on the workers, in input order."""
        arguments = list(arguments)
        if not arguments:
            return []
        if self.backend == "dask":
            return self._dask_map(function, arguments)
        if self.local:
            return [function(*a) for a in arguments]
        return joblib.Parallel(n_jobs=self.workers, backend=self.backend)(
            joblib.delayed(function)(*a) for a in arguments)

    def close(self) -> None:
        """Disconnects from the scheduler and stops a LocalCluster this pool started."""
        client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        if self._borrowed:
            client, self._borrowed = None, False
        quiet, self._quiet = self._quiet, None
        for part in (client, cluster):
            if part is not None:
                try:
                    part.close()
                except (OSError, RuntimeError, TimeoutError) as err:   # a scheduler already gone
                    log.debug("closing the Dask %s: %s", type(part).__name__, _reason(err))
        if quiet is not None:
            quiet.restore()

    # ---- Dask ---------------------------------------------------------------------------

    @property
    def _address(self) -> str | None:
        """Returns the scheduler's address: --scheduler, else DASK_SCHEDULER_ADDRESS, else None (a LocalCluster)."""
        return self.scheduler or os.environ.get(SCHEDULER_ENV) or None

    def _connect(self) -> None:
        try:
            import distributed
        except ImportError:
            raise UserError("--backend dask needs the distributed package: pip install 'headcode[dask]'") from None
        address = self._address
        self._quiet = _Quiet("distributed")   # its tracebacks of a lost connection: the UserError says it
        try:
            existing = _default_client() if address is None else None
            if existing is not None:
                self._client, self._borrowed = existing, True   # one the caller made in this process
            elif address is None:
                self._cluster = distributed.LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=logging.ERROR)
                self._client = distributed.Client(self._cluster, set_as_default=False)
            else:
                self._client = distributed.Client(address, timeout=self.connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            self.close()
            where = f"the Dask scheduler at {address}" if address else "a local Dask cluster"
            raise UserError(f"could not reach {where}: {_reason(err)}") from None

    def _dask_map(self, function, arguments: list[tuple]) -> list:
        if self._client is None:
            self._connect()
        from distributed import KilledWorker
        from distributed.client import FutureCancelledError
        try:
            futures = [self._client.submit(function, *a, pure=False, retries=self.retries) for a in arguments]
            return self._client.gather(futures)
        except KilledWorker as err:
            raise UserError(f"a task took down every Dask worker that ran it ({_reason(err)})") from None
        except (OSError, TimeoutError, FutureCancelledError) as err:
            where = self._address or "the local Dask cluster"
            why = "the connection was lost" if isinstance(err, FutureCancelledError) else _reason(err)
            raise UserError(f"lost the Dask scheduler ({where}): {why}; work since the last checkpoint "
                            "is dropped, the checkpoint is intact") from None


class _Quiet:
    """Raises the level of a logger and of every logger below it to CRITICAL until `restore()`."""

    def __init__(self, name: str):
        names = [name] + [n for n in list(logging.root.manager.loggerDict) if n.startswith(name + ".")]
        self.levels = {n: logging.getLogger(n).level for n in names}
        for n in names:
            logging.getLogger(n).setLevel(logging.CRITICAL)

    def restore(self) -> None:
        for n, level in self.levels.items():
            logging.getLogger(n).setLevel(level)


def _default_client():
    """Returns the dask.distributed Client made earlier in this process, or None."""
    import distributed
    try:
        return distributed.get_client()
    except ValueError:
        return None


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."
