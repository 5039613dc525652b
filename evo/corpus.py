"""The sentences heads are captured on: the built-in corpus and its fixed splits, and user corpora.

The built-in corpus lives in `evo/data/corpus.tsv` (columns `split`, `kind`, `text`; how it was
written and split is in `evo/data/CORPUS.md`). A user corpus is a `.txt` file (one sentence per
line) or a `.jsonl` file (one `{"text": ...}` object per line); any other extension is refused,
so that a CSV or a JSON array is never silently read as sentences.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import importlib.resources
import json
import os
import pathlib

from evo.errors import UserError

SPLITS = ("search", "validation", "perplexity")
SUFFIXES = (".txt", ".jsonl")
BUILTIN_FILE = "corpus.tsv"
_HEADER = ("split", "kind", "text")
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_MAX_LISTED_LINES = 5


@dataclasses.dataclass(frozen=True)
class Corpus:
    sentences: tuple[str, ...]
    source: str  # "builtin:search" or the file path as the user gave it
    fingerprint: str  # fingerprint(sentences): sha256 hex, first 16 chars
    warnings: tuple[str, ...] = ()  # one line each, for the CLI to print
    kinds: tuple[str, ...] | None = None  # per-sentence kind for the built-in corpus; None for user files

    def __len__(self) -> int:
        return len(self.sentences)

    def head(self, n: int) -> "Corpus":
        """Returns the first `n` sentences as a corpus of their own (fingerprint recomputed)."""
        kept = self.sentences[:n]
        return dataclasses.replace(self, sentences=kept, fingerprint=fingerprint(kept),
                                   kinds=None if self.kinds is None else self.kinds[:n])


def load(path: str | os.PathLike | None = None, split: str = "search") -> Corpus:
    """Returns the built-in `split` when `path` is None, else the user corpus at `path`."""
    if split not in SPLITS:
        raise UserError(f"unknown corpus split {split!r}: choose one of {', '.join(SPLITS)}")
    if path is None:
        return _builtin(split)
    if split != "search":
        raise UserError(
            f"split {split!r} applies only to the built-in corpus; "
            f"a corpus file ({os.fspath(path)}) is used whole"
        )
    return _from_file(path)


def fingerprint(sentences: tuple[str, ...] | list[str]) -> str:
    """Returns the first 16 hex chars of the sha256 of the sentences (JSON-encoded, order kept)."""
    payload = json.dumps(list(sentences), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def sizes() -> dict[str, int]:
    """Returns the number of sentences in each built-in split, in SPLITS order."""
    counts = collections.Counter(split for split, _, _ in _builtin_rows())
    return {split: counts[split] for split in SPLITS}


def kind_counts(split: str) -> dict[str, int]:
    """Returns how many sentences of each kind the built-in `split` holds, in file order."""
    if split not in SPLITS:
        raise UserError(f"unknown corpus split {split!r}: choose one of {', '.join(SPLITS)}")
    return dict(collections.Counter(kind for s, kind, _ in _builtin_rows() if s == split))


# --- built-in corpus -------------------------------------------------------------------------


def _builtin(split: str) -> Corpus:
    """Returns the built-in split, its kinds interleaved round-robin so any prefix mixes them."""
    rows = _interleave([(kind, text) for s, kind, text in _builtin_rows() if s == split])
    sentences = tuple(text for _, text in rows)
    return Corpus(
        sentences=sentences,
        source=f"builtin:{split}",
        fingerprint=fingerprint(sentences),
        kinds=tuple(kind for kind, _ in rows),
    )


def _interleave(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Returns (kind, text) rows reordered one kind at a time, kinds in first-seen order."""
    by_kind: dict[str, collections.deque] = {}
    for kind, text in rows:
        by_kind.setdefault(kind, collections.deque()).append((kind, text))
    out = []
    while by_kind:
        for kind in list(by_kind):
            out.append(by_kind[kind].popleft())
            if not by_kind[kind]:
                del by_kind[kind]
    return out


@functools.lru_cache(maxsize=1)
def _builtin_rows() -> tuple[tuple[str, str, str], ...]:
    """Returns the packaged corpus as (split, kind, text) rows; RuntimeError if it is damaged."""
    resource = importlib.resources.files("evo") / "data" / BUILTIN_FILE
    lines = resource.read_text(encoding="utf-8").split("\n")
    if tuple(lines[0].split("\t")) != _HEADER:
        raise RuntimeError(f"packaged corpus evo/data/{BUILTIN_FILE} has a bad header: {lines[0]!r}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = tuple(line.split("\t"))
        if len(fields) != 3 or fields[0] not in SPLITS or not fields[2].strip():
            raise RuntimeError(f"packaged corpus evo/data/{BUILTIN_FILE} line {number} is malformed")
        rows.append(fields)
    return tuple(rows)


# --- user corpora ----------------------------------------------------------------------------


def _from_file(path: str | os.PathLike) -> Corpus:
    """Returns the corpus in a user's .txt or .jsonl file; UserError for anything unreadable."""
    shown = os.fspath(path)
    file = _check_path(shown)
    try:
        data = file.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read corpus file {shown}: {err.strerror or err}") from err
    lines, bad_lines = _decode_lines(data, shown)
    warnings = []
    if bad_lines:
        warnings.append(_bad_bytes_warning(shown, bad_lines))
    parse = _parse_jsonl if file.suffix.lower() == ".jsonl" else _parse_txt
    sentences, parse_warnings = parse(lines, shown)
    warnings.extend(parse_warnings)
    if not sentences:
        raise UserError(f"corpus file {shown} contains no sentences (blank lines are skipped)")
    duplicates = len(sentences) - len(set(sentences))
    if duplicates:
        warnings.append(f"{shown}: {duplicates} sentence(s) repeat an earlier one; repeats are kept")
    return Corpus(
        sentences=tuple(sentences),
        source=shown,
        fingerprint=fingerprint(sentences),
        warnings=tuple(warnings),
    )


def _check_path(shown: str) -> pathlib.Path:
    """Returns `shown` as a Path after checking it names an existing file with a known suffix."""
    if not shown.strip():
        raise UserError("corpus path is empty: give a .txt or .jsonl file")
    file = pathlib.Path(shown).expanduser()
    if file.is_dir():
        raise UserError(f"corpus path {shown} is a directory: give a .txt or .jsonl file")
    if not file.exists():
        raise UserError(f"corpus file not found: {shown}")
    if file.suffix.lower() not in SUFFIXES:
        raise UserError(
            f"corpus file {shown} has extension {file.suffix or '(none)'!r}: use .txt (one sentence "
            'per line) or .jsonl (one {"text": ...} object per line); rename it if it is one of those'
        )
    return file


def _decode_lines(data: bytes, shown: str) -> tuple[list[str], list[int]]:
    """Returns the file's lines decoded as UTF-8 and the 1-based numbers of lines with bad bytes."""
    if data.startswith(_UTF16_BOMS):
        raise UserError(f"corpus file {shown} is UTF-16 encoded: save it as UTF-8")
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
    lines, bad = [], []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(raw.decode("utf-8", errors="replace"))
            bad.append(number)
    return lines, bad


def _bad_bytes_warning(shown: str, bad_lines: list[int]) -> str:
    """Returns the one-line warning naming how many lines had undecodable bytes, and which."""
    listed = ", ".join(str(n) for n in bad_lines[:_MAX_LISTED_LINES])
    more = f" and {len(bad_lines) - _MAX_LISTED_LINES} more" if len(bad_lines) > _MAX_LISTED_LINES else ""
    return (
        f"{shown}: {len(bad_lines)} line(s) had bytes that are not valid UTF-8 "
        f"(line {listed}{more}); they were replaced with U+FFFD"
    )


def _parse_txt(lines: list[str], shown: str) -> tuple[list[str], list[str]]:
    """Returns the non-blank lines, stripped, and no warnings."""
    return [line.strip() for line in lines if line.strip()], []


def _parse_jsonl(lines: list[str], shown: str) -> tuple[list[str], list[str]]:
    """Returns each object's stripped "text" and a warning counting empty texts skipped."""
    sentences, empty = [], 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        text = _jsonl_text(line, number, shown).strip()
        if text:
            sentences.append(text)
        else:
            empty += 1
    warnings = [f"{shown}: skipped {empty} object(s) whose \"text\" is empty"] if empty else []
    return sentences, warnings


def _jsonl_text(line: str, number: int, shown: str) -> str:
    """Returns the "text" string of one JSON Lines record; UserError naming the line otherwise."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise UserError(f"{shown} line {number}: not valid JSON ({err.msg}, column {err.colno})") from err
    if not isinstance(record, dict):
        raise UserError(
            f'{shown} line {number}: expected an object like {{"text": "..."}}, '
            f"got a JSON {_json_type(record)}"
        )
    if "text" not in record:
        raise UserError(f'{shown} line {number}: the object has no "text" field')
    if not isinstance(record["text"], str):
        raise UserError(
            f'{shown} line {number}: "text" must be a string, got a JSON {_json_type(record["text"])}'
        )
    return record["text"]


def _json_type(value: object) -> str:
    """Returns the JSON name of a decoded value's type ("array", "number", "null", ...)."""
    names = {list: "array", dict: "object", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names[type(value)]
