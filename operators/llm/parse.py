"""Turning an LLM's reply into a program: code extraction, trimming, SEARCH/REPLACE edits."""

from __future__ import annotations

import ast
import dataclasses
import re

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[ \t]*$", re.MULTILINE)
_EDIT = re.compile(
    r"^[ \t]*<{5,9}[ \t]*SEARCH[ \t]*\n(.*?)^[ \t]*={5,9}[ \t]*\n(.*?)^[ \t]*>{5,9}[ \t]*REPLACE[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_CODE_START = re.compile(r"^(import |from |def |class |@|[A-Z_][A-Z0-9_]* *=)")


@dataclasses.dataclass(frozen=True)
class Parsed:
    source: str | None   # the program, or None when the reply held none
    error: str | None    # one line, when source is None
    form: str = ""       # "rewrite" or "edit": how the program was obtained


def code_blocks(reply: str) -> list[str]:
    """Returns the fenced code blocks of a reply, in order; an unclosed last fence runs to the end."""
    fences = list(_FENCE.finditer(reply))
    blocks = []
    i = 0
    while i < len(fences):
        start = fences[i].end() + 1
        if i + 1 < len(fences):
            blocks.append(reply[start:fences[i + 1].start()])
            i += 2
        else:
            blocks.append(reply[start:])
            i += 1
    return blocks


def trim_to_parse(text: str) -> str | None:
    """Returns `text` with trailing lines dropped until it parses, or None when nothing does."""
    lines = text.rstrip().split("\n")
    while lines:
        candidate = "\n".join(lines)
        try:
            ast.parse(candidate)
        except SyntaxError:
            lines.pop()
            continue
        if _defines_attention(candidate):
            return candidate + "\n"
        return None
    return None


def _defines_attention(source: str) -> bool:
    """Returns whether `source` defines a top-level function named `attention`."""
    tree = ast.parse(source)
    return any(isinstance(n, ast.FunctionDef) and n.name == "attention" for n in tree.body)


def _unfenced_code(reply: str) -> str:
    """Returns the reply from its first line that looks like the start of Python code."""
    lines = reply.split("\n")
    for i, line in enumerate(lines):
        if _CODE_START.match(line):
            return "\n".join(lines[i:])
    return reply


def _names_used(node: ast.AST) -> set[str]:
    """Returns every bare name loaded anywhere inside `node`."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def keep_attention_module(source: str) -> str:
    """Returns `source` reduced to its imports, the `attention` function and what it reaches.

    Drops example calls, prints, `if __name__ == "__main__"` blocks and helpers that
    `attention` never uses; the last definition of a name wins, as in Python.
    """
    tree = ast.parse(source)
    defs: dict[str, ast.stmt] = {}
    for node in tree.body:
        for name in _defined_names(node):
            defs[name] = node
    keep: set[int] = set()
    todo = ["attention"]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        node = defs[name]
        keep.add(id(node))
        todo.extend(_names_used(node))
    docstring = _module_docstring(tree)
    body = [n for n in tree.body
            if isinstance(n, (ast.Import, ast.ImportFrom)) or id(n) in keep or n is docstring]
    if len(body) == len(tree.body):
        return source.strip("\n") + "\n"
    lines = source.split("\n")
    parts = [_segment(lines, n) for n in body]
    return "".join(p + ("\n\n\n" if isinstance(n, (ast.FunctionDef, ast.ClassDef)) or
                        isinstance(nxt, (ast.FunctionDef, ast.ClassDef)) else "\n")
                   for p, n, nxt in zip(parts, body, body[1:] + [None])).rstrip("\n") + "\n"


def _defined_names(node: ast.stmt) -> list[str]:
    """Returns the top-level names a statement binds (functions, classes, simple assignments)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _module_docstring(tree: ast.Module) -> ast.stmt | None:
    """Returns the module's docstring statement, if it has one."""
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first
    return None


def _segment(lines: list[str], node: ast.stmt) -> str:
    """Returns the source lines of a top-level statement, decorators and comments above it kept."""
    start = node.lineno - 1
    decorators = getattr(node, "decorator_list", [])
    if decorators:
        start = min(d.lineno for d in decorators) - 1
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return "\n".join(lines[start:node.end_lineno]).rstrip()


def extract_program(reply: str) -> Parsed:
    """Returns the program in a full-rewrite reply, or the reason there is none."""
    if not reply or not reply.strip():
        return Parsed(None, "empty reply")
    candidates = [b for b in code_blocks(reply) if "def attention" in b]
    if not candidates:
        candidates = [_unfenced_code(reply)]
    # Several blocks: the last complete one wins; helpers defined in earlier blocks are kept.
    for block in reversed(candidates):
        source = trim_to_parse(block)
        if source is None:
            continue
        source = _with_helpers_from(source, code_blocks(reply))
        return Parsed(keep_attention_module(source), None, "rewrite")
    if "def attention" not in reply:
        return Parsed(None, "reply has no `def attention`")
    return Parsed(None, "no parsable program with `def attention` in reply")


def _with_helpers_from(source: str, blocks: list[str]) -> str:
    """Returns `source` with top-level functions it calls but lacks, taken from other blocks."""
    tree = ast.parse(source)
    defined = {name for node in tree.body for name in _defined_names(node)}
    missing = _names_used(tree) - defined
    extra = []
    for block in blocks:
        try:
            other = ast.parse(block)
        except SyntaxError:
            continue
        lines = block.split("\n")
        for node in other.body:
            if isinstance(node, ast.FunctionDef) and node.name in missing and node.name != "attention":
                extra.append(_segment(lines, node))
                missing.discard(node.name)
    if not extra:
        return source
    return source.rstrip() + "\n\n\n" + "\n\n\n".join(extra) + "\n"


@dataclasses.dataclass(frozen=True)
class Edit:
    search: str
    replace: str


def edit_blocks(reply: str) -> list[Edit]:
    """Returns the SEARCH/REPLACE blocks of a reply, in order."""
    return [Edit(m.group(1), m.group(2)) for m in _EDIT.finditer(reply)]


def _find_loose(text: str, search: str) -> tuple[int, int] | None:
    """Returns the span of `search` in `text` comparing lines without trailing whitespace."""
    want = [line.rstrip() for line in search.rstrip("\n").split("\n")]
    have = text.split("\n")
    offsets = [0]
    for line in have:
        offsets.append(offsets[-1] + len(line) + 1)
    for i in range(len(have) - len(want) + 1):
        if [line.rstrip() for line in have[i:i + len(want)]] == want:
            end = offsets[i + len(want)] - 1
            return offsets[i], min(end, len(text))
    # Same lines, different indentation throughout (the LLM dedented the snippet).
    stripped = [line.strip() for line in want]
    for i in range(len(have) - len(want) + 1):
        if [line.strip() for line in have[i:i + len(want)]] == stripped and any(stripped):
            end = offsets[i + len(want)] - 1
            return offsets[i], min(end, len(text))
    return None


def apply_edits(parent: str, reply: str) -> Parsed:
    """Returns the parent with the reply's SEARCH/REPLACE blocks applied, or why they do not apply.

    A reply with no edit blocks but a whole program is taken as a rewrite.
    """
    edits = edit_blocks(reply)
    if not edits:
        parsed = extract_program(reply)
        if parsed.source is not None:
            return parsed
        return Parsed(None, "reply has no SEARCH/REPLACE block and no program")
    text = parent
    for number, edit in enumerate(edits, 1):
        where = f"edit {number} of {len(edits)}"
        if not edit.search.strip():
            return Parsed(None, f"{where}: empty SEARCH text")
        start = text.find(edit.search)
        if start >= 0:
            text = text[:start] + edit.replace + text[start + len(edit.search):]
            continue
        span = _find_loose(text, edit.search)
        if span is None:
            first = edit.search.strip().split("\n")[0][:60]
            return Parsed(None, f"{where}: SEARCH text not found in parent (starts {first!r})")
        replace = edit.replace.rstrip("\n")
        text = text[:span[0]] + _reindent(replace, text[span[0]:span[1]], edit.search) + text[span[1]:]
    try:
        ast.parse(text)
    except SyntaxError as err:
        return Parsed(None, f"edited program has a syntax error at line {err.lineno}: {err.msg}")
    if not _defines_attention(text):
        return Parsed(None, "edited program no longer defines `attention`")
    return Parsed(text, None, "edit")


def _reindent(replace: str, found: str, search: str) -> str:
    """Returns `replace` shifted by the indentation difference between the parent and SEARCH text."""
    def indent(s: str) -> int:
        first = next((line for line in s.split("\n") if line.strip()), "")
        return len(first) - len(first.lstrip())
    shift = indent(found) - indent(search)
    if shift <= 0:
        return replace
    pad = " " * shift
    return "\n".join(pad + line if line.strip() else line for line in replace.split("\n"))
