"""The archive: every program a run has evaluated, its scores against every head, by key."""

from __future__ import annotations

import base64
import dataclasses

import numpy as np

FINISHED = "finished"  # the state's mark: sources canonical when made, lengths and accounts theirs (evo.search.migrate)


@dataclasses.dataclass(frozen=True)
class Record:
    """One evaluated program and where it came from."""

    id: str
    key: str
    source: str
    parents: tuple[str, ...]
    operator: str
    generation: int
    length: int
    ok: bool
    error: str | None
    seconds: float
    target: tuple[int, ...] = ()  # the head(s) the request that made it aimed at
    account: str | None = None    # what it does, in words, written when it was made (operators.finish)
    behaviour: str | None = None  # fingerprint of what it computes (evo.evaluate.behaviour), when it ran

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        """Returns a record from its JSON form, ignoring fields this version does not know."""
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in d.items() if k in names}
        kept["parents"] = tuple(kept.get("parents", ()))
        kept["target"] = tuple(kept.get("target", ()))
        return cls(**kept)


def encode(a: np.ndarray, dtype=np.float32) -> str:
    """Returns `a` as base64 of its little-endian bytes in `dtype`."""
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def decode(text: str, dtype=np.float32) -> np.ndarray:
    """Returns the 1-D array that `encode` wrote."""
    return np.frombuffer(base64.b64decode(text), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


class Archive:
    """Records in evaluation order, their (N, K) IoU table, and per-(program, head) costs."""

    def __init__(self, n_heads: int):
        self.n_heads = n_heads
        self.records: list[Record] = []
        self.by_key: dict[str, int] = {}
        self.by_id: dict[str, int] = {}
        self.behaviours: set[str] = set()  # fingerprints of the programs that ran (evo.search.novelty)
        self._iou = np.zeros((64, n_heads), dtype=np.float32)
        self.ppl: dict[tuple[int, int], float | None] = {}  # (index, head) -> relative increase
        self.ppl_se: dict[tuple[int, int], float] = {}      # (index, head) -> its standard error

    def __len__(self) -> int:
        return len(self.records)

    @property
    def iou(self) -> np.ndarray:
        """Returns the (N, K) IoU table; failed programs score 0 everywhere."""
        return self._iou[: len(self.records)]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([r.length for r in self.records], dtype=np.int64)

    @property
    def ok(self) -> np.ndarray:
        return np.array([r.ok for r in self.records], dtype=bool)

    def add(self, record: Record, iou: np.ndarray | None) -> int:
        """Appends one record and its scores; returns its index."""
        assert record.key not in self.by_key, f"program {record.id} evaluated twice"
        assert record.id not in self.by_id, f"duplicate program id {record.id}"
        n = len(self.records)
        if n == len(self._iou):
            self._iou = np.concatenate([self._iou, np.zeros_like(self._iou)])
        self._iou[n] = 0.0 if iou is None else np.asarray(iou, dtype=np.float32)
        self.records.append(record)
        self.by_key[record.key] = n
        self.by_id[record.id] = n
        if record.behaviour is not None:
            self.behaviours.add(record.behaviour)
        return n

    def ppl_column(self, k: int) -> np.ndarray:
        """Returns the (N,) downstream cost for head k, NaN where not measured."""
        col = np.full(len(self.records), np.nan)
        for (i, head), value in self.ppl.items():
            if head == k and value is not None:
                col[i] = value
        return col

    def ppl_se_column(self, k: int) -> np.ndarray:
        """Returns the (N,) standard error of head k's downstream cost, 0 where none was given."""
        col = np.zeros(len(self.records))
        for (i, head), value in self.ppl_se.items():
            if head == k:
                col[i] = value
        return col

    def state(self) -> dict:
        """Returns the JSON-able archive (exact float32 scores)."""
        rows = []
        for i, r in enumerate(self.records):
            row = dataclasses.asdict(r)
            row["parents"] = list(r.parents)
            row["target"] = list(r.target)
            row["iou"] = encode(self._iou[i]) if r.ok else None
            rows.append(row)
        ppl = [[self.records[i].id, k, v, self.ppl_se.get((i, k))] for (i, k), v in sorted(self.ppl.items())]
        return {"n_heads": self.n_heads, "records": rows, "ppl": ppl, FINISHED: True}

    @classmethod
    def from_state(cls, state: dict) -> "Archive":
        """Returns the archive `state()` wrote."""
        archive = cls(int(state["n_heads"]))
        for row in state["records"]:
            iou = decode(row["iou"]) if row.get("iou") else None
            if iou is not None and iou.shape != (archive.n_heads,):
                raise ValueError(f"program {row['id']} has {iou.shape[0]} head scores, expected {archive.n_heads}")
            archive.add(Record.from_dict(row), iou)
        for row in state.get("ppl", []):
            pid, k, v = row[:3]
            archive.ppl[(archive.by_id[pid], int(k))] = v
            if len(row) > 3 and row[3] is not None:
                archive.ppl_se[(archive.by_id[pid], int(k))] = float(row[3])
        return archive
