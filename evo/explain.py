"""`evo explain`: every head on one screen, or a head's readable program, its account and heatmaps.

The heatmaps are drawn with rich in the terminal: one cell per (query, key), darker where
more attention goes, the masked half blank; then each query's top three keys for the
head and for the program.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from evo import evaluate, results
from evo.explanation import families
from evo.errors import UserError

MAX_SHOWN = 24  # tokens drawn per heatmap; longer sentences show their first MAX_SHOWN
WIDTH = 100     # columns of a summary line


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One sentence: its tokens, the head's attention, the program's, and their IoU."""

    tokens: list[str]
    head: np.ndarray     # (n, n)
    program: np.ndarray  # (n, n)
    iou: float


def compact(told) -> str:
    """Returns a head's shares in short: "first 52 (50) · previous 30 (33) · rest 9 (17)", head % (program %);
    where the head follows content, its share off the first token on the key the tokens alone favour
    ("favoured 47 (54)")."""
    parts = []
    for row in told.shares["patterns"]:
        theirs = "" if row["program"] is None else f" ({100 * row['program']:.0f})"
        parts.append(f"{row['pattern']} {100 * row['head']:.0f}{theirs}")
    content = told.shares.get("content")
    if content and families.selective_content((content["head"], content["even"])):
        theirs = "" if content["program"] is None else f" ({100 * content['program']:.0f})"
        parts.append(f"favoured {100 * content['head']:.0f}{theirs}")
    return " · ".join(parts)


def summary_lines(res: results.Results, family: str | None = None) -> list[str]:
    """Returns the one-screen summary: a title, a legend, one line of at most WIDTH columns per head
    (head, family, the readable pick's IoU and length, its shares), and the families."""
    heads = [k for k in range(len(res.heads)) if family is None or res.told(k).family == family]
    readable = [res.readable(k) for k in range(len(res.heads))]
    lines = [f"{res.model}: {len(res.heads)} heads, readable programs of at most {res.readable_nodes} AST nodes"
             f" (mean IoU {np.mean([r.iou for r in readable]):.3f}; best fits "
             f"{np.mean([res.best(k).iou for k in range(len(res.heads))]):.3f})",
             f"shares of attention in %, head (program), on {res.told(0).shares['text'] or 'no text'}"[:WIDTH],
             f"{'head':<7} {'family':<15} {'IoU':>5} {'len':>4}  account"]
    for k in heads:
        r = readable[k]
        line = f"{res.label(k):<7} {res.told(k).family:<15} {r.iou:5.3f} {r.length:>4}  {compact(res.told(k))}"
        lines.append(line if len(line) <= WIDTH else line[:WIDTH - 1] + "…")
    counts = {}
    for k in range(len(res.heads)):
        counts.setdefault(res.told(k).family, []).append(readable[k].iou)
    lines += _wrapped("families: " + ", ".join(f"{name} {len(v)} (IoU {np.mean(v):.2f})"
                                              for name, v in sorted(counts.items(), key=lambda kv: -len(kv[1]))))
    if family is not None and not heads:
        lines.append(f"no head is in the family {family!r}")
    return lines


def _wrapped(text: str) -> list[str]:
    """Returns the text in lines of at most WIDTH columns, broken after commas."""
    lines = [""]
    for part in text.split(", "):
        piece = part if not lines[-1] else ", " + part
        if lines[-1] and len(lines[-1]) + len(piece) > WIDTH:
            lines[-1] += ","
            lines.append("  " + part)
        else:
            lines[-1] += piece
    return lines


def compare(res: results.Results, k: int, pid: str, sentence: int) -> Comparison:
    """Returns the head's and the program's attention on one sentence of the run's attention set."""
    from evo import attention_set
    if res.aset_path is None or not (res.aset_path / "meta.json").is_file():
        raise UserError(f"the attention set of {res.source} is not on this machine "
                        f"({res.aset_path or 'no path recorded'}); recapture it with `evo capture`")
    aset = attention_set.AttentionSet.load(res.aset_path)
    if not 0 <= sentence < len(aset):
        raise UserError(f"--sentence {sentence} is out of range: the attention set has {len(aset)} sentences")
    tokens = list(aset.tokens[sentence])
    head = aset.matrices(sentence)[k].astype(np.float64)
    outs, error = evaluate.outputs(res.sources[pid], [tokens], res.causal)
    if outs is None:
        raise UserError(f"program {pid} fails on sentence {sentence}: {error}")
    from evo import fitness
    iou = float(fitness.iou_rows(head, outs[0]).mean())
    return Comparison(tokens, head, outs[0], iou)


def head_view(res: results.Results, k: int) -> Group:
    """Returns the head's readable program with its measured account, then its best fit beside it."""
    readable, best, told = res.readable(k), res.best(k), res.told(k)
    title = Text(f"{res.label(k)} {told.family} (readable, IoU {readable.iou:.3f}, {readable.length} AST nodes)",
                 style="bold")
    where = f"measured on {told.shares['text']}" if told.shares.get("text") else "not measured (no attention set)"
    lines = [title, Text(told.account), Text(where, style="dim"),
             Text(res.sources[readable.program].rstrip())]
    if best.program != readable.program:
        lines.append(Text(f"best fit: program {best.program}, IoU {best.iou:.3f} (+{best.iou - readable.iou:.3f} "
                          f"over the readable one), {best.length} AST nodes; {best.account}", style="dim"))
        if told.attribution_words:
            lines.append(Text(f"best fit's {told.attribution_words}", style="dim"))
    lines.append(Text(f"{res.model}, {len(res.fronts[k])} programs on its front", style="dim"))
    return Group(*lines)


def heatmaps(cmp: Comparison, causal: bool) -> Group:
    """Returns the head's and the program's attention side by side, then each query's top three keys."""
    n = min(len(cmp.tokens), MAX_SHOWN)
    grid = Table(box=None, show_header=True, pad_edge=False)
    grid.add_column("query")
    grid.add_column("head")
    grid.add_column("program")
    for i in range(n):
        grid.add_row(_label(cmp.tokens[i]), _cells(cmp.head[i, :n], i, causal), _cells(cmp.program[i, :n], i, causal))
    tops = Table(box=None, pad_edge=False)
    for col in ("query", "head's top 3 keys", "program's top 3 keys"):
        tops.add_column(col, overflow="fold")
    for i in range(len(cmp.tokens)):
        tops.add_row(f"{i} {_label(cmp.tokens[i])}", _top3(cmp.tokens, cmp.head[i]), _top3(cmp.tokens, cmp.program[i]))
    note = f" (first {n} of {len(cmp.tokens)} tokens drawn)" if n < len(cmp.tokens) else ""
    return Group(Text(f"one sentence, IoU {cmp.iou:.3f}{note}", style="bold"), grid, tops)


def _cells(row: np.ndarray, i: int, causal: bool) -> Text:
    out = Text()
    peak = max(float(row.max()), 1e-9)
    for j, v in enumerate(row):
        if causal and j > i:
            out.append("  ")
            continue
        shade = int(255 - 215 * min(float(v) / peak, 1.0) ** 0.5) if v > 0 else 255
        out.append("  ", style=f"on rgb({shade},{shade},255)")
    return out


def _label(tok: str) -> str:
    text = repr(tok)[1:-1]
    return text if len(text) <= 12 else text[:11] + "…"


def _top3(tokens: list[str], row: np.ndarray) -> str:
    order = np.argsort(-row, kind="stable")[:3]
    return "  ".join(f"{j}:{_label(tokens[j])} {row[j]:.2f}" for j in order if row[j] >= 0.005)


def show(console: Console, res: results.Results, label: str | None, sentence: int,
         family: str | None = None) -> None:
    """Prints one head's explanation, or one line per head when no head is given."""
    if label is None:
        for line in summary_lines(res, family):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    k = res.index(label)
    console.print(head_view(res, k))
    pick = res.readable(k)
    try:
        cmp = compare(res, k, pick.program, sentence)
    except UserError as err:
        console.print(Text(f"no heatmap: {err}", style="yellow"))
        return
    console.print(heatmaps(cmp, res.causal))
