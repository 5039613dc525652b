"""`evo explain`: a head's account, its two picks, and its attention next to the program's.

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
from evo.errors import UserError
from operators.shared import account

MAX_SHOWN = 24  # tokens drawn per heatmap; longer sentences show their first MAX_SHOWN


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One sentence: its tokens, the head's attention, the program's, and their IoU."""

    tokens: list[str]
    head: np.ndarray     # (n, n)
    program: np.ndarray  # (n, n)
    iou: float


def summary_lines(res: results.Results) -> list[str]:
    """Returns one line per head: `L.H  IoU  length  account` (the simplest pick)."""
    lines = []
    for k in range(len(res.heads)):
        pick = res.simplest(k)
        lines.append(f"{res.label(k):<7} {pick.iou:.3f}  {pick.length:>4}  {pick.account}")
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
    """Returns the head's account and its simplest and best picks, for the terminal."""
    simplest, best = res.simplest(k), res.best(k)
    table = Table(box=None, pad_edge=False)
    for col in ("pick", "program", "IoU", "length", "account"):
        table.add_column(col, overflow="fold")
    table.add_row("simplest", simplest.program, f"{simplest.iou:.3f}", str(simplest.length), simplest.account)
    if best.program != simplest.program:
        table.add_row("best", best.program, f"{best.iou:.3f}", str(best.length), best.account)
    title = Text(account.headline(res.label(k), simplest.iou, simplest.account), style="bold")
    return Group(title, Text(f"{res.model}, {len(res.fronts[k])} programs on its front"), table,
                 Text(res.sources[simplest.program].rstrip(), style="dim"))


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


def show(console: Console, res: results.Results, label: str | None, sentence: int) -> None:
    """Prints one head's explanation, or one line per head when no head is given."""
    if label is None:
        for line in summary_lines(res):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    k = res.index(label)
    console.print(head_view(res, k))
    pick = res.simplest(k)
    try:
        cmp = compare(res, k, pick.program, sentence)
    except UserError as err:
        console.print(Text(f"no heatmap: {err}", style="yellow"))
        return
    console.print(heatmaps(cmp, res.causal))
