"""The report's figures: per head its attention beside its program's, and its front; paper figures.

On the page a heatmap is an n x n PNG of one pixel per cell, scaled up unblurred, with the
tokens on both axes written as text by the page (evo.report.page), so a 700-head report
writes in seconds and its labels stay crisp at any zoom. Fronts, the search curve and the
paper figures (`--figures`: the head beside its program, one paper column wide, tokens on
both axes) are drawn by matplotlib; the masked half of a causal head stays blank.
"""

from __future__ import annotations

import pathlib

import numpy as np

MAX_TOKENS = 32   # tokens drawn per heatmap; a longer sentence shows its first MAX_TOKENS
_CMAP = "Blues"


def _NORM():
    from matplotlib.colors import PowerNorm
    return PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)  # small weights stay visible beside a sink


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    return pyplot


def heatmap(matrix: np.ndarray, causal: bool, path: pathlib.Path) -> None:
    """Writes an attention matrix as an n x n PNG, one pixel per cell (the page scales it up, unblurred).

    Colours are the figures' (Blues, square-root scale, so small weights stay visible beside a
    sink); the masked half of a causal matrix is transparent, so it shows blank.
    """
    from matplotlib import colormaps
    from PIL import Image
    m = np.asarray(matrix, dtype=np.float64)
    rgba = colormaps[_CMAP](np.ma.filled(_NORM()(m), 0.0))   # (n, n, 4) in [0, 1]
    if causal:
        rgba[np.triu(np.ones(m.shape, dtype=bool), k=1)] = 0.0
    Image.fromarray((rgba * 255).round().astype(np.uint8), "RGBA").save(path, optimize=False, compress_level=1)


def example_labels(tokens: list[str]) -> list[str]:
    """Returns the axis labels of a heatmap: its first MAX_TOKENS tokens, readable and short."""
    return [_label(t).replace("\\$", "$") for t in tokens[:MAX_TOKENS]]


def paper_figure(head, causal: bool, path: pathlib.Path, fmt: str = "png", max_tokens: int = 20) -> None:
    """Writes a figure one paper column wide (3.4 in): the head beside its readable program on its median sentence."""
    plt = _pyplot()
    ex = next((e for e in head.examples if e.kind == "median"), head.examples[0])
    n = min(len(ex.tokens), max_tokens)
    labels = [_label(t) for t in ex.tokens[:n]]
    fig, axes = plt.subplots(1, 2, figsize=(3.4, 2.05), sharey=True)
    for ax, (name, m) in zip(axes, (("head", ex.head), ("program", ex.program))):
        shown = np.array(m[:n, :n], dtype=np.float64)
        if causal:
            shown = np.ma.masked_where(np.triu(np.ones((n, n), dtype=bool), k=1), shown)
        ax.imshow(shown, cmap=_CMAP, norm=_NORM(), interpolation="nearest")
        ax.set_xticks(range(n), labels, rotation=90, fontsize=4.5)
        ax.set_yticks(range(n), labels, fontsize=4.5)
        ax.tick_params(length=0, pad=1)
        ax.set_title(f"{head.label} {name}" if name == "head" else f"program (IoU {ex.iou:.2f})", fontsize=6.5)
    fig.subplots_adjust(left=0.16, right=0.99, bottom=0.22, top=0.9, wspace=0.08)
    fig.savefig(path, format=fmt, dpi=300 if fmt == "png" else 100)
    plt.close(fig)


class FrontPainter:
    """Draws heads' Pareto fronts (IoU against length) into one reused figure."""

    def __init__(self):
        plt = _pyplot()
        self.fig, self.ax = plt.subplots(figsize=(3.0, 2.1))
        self.fig.subplots_adjust(left=0.17, right=0.97, bottom=0.2, top=0.95)

    def draw(self, head, path: pathlib.Path, fmt: str = "png", dpi: int = 100) -> None:
        """Writes head's front; points coloured by perplexity cost where it was measured."""
        ax = self.ax
        ax.clear()
        xs = [e.length for e in head.front]
        ys = [e.iou for e in head.front]
        costs = [e.ppl_increase for e in head.front]
        if any(c is not None for c in costs):
            values = [np.nan if c is None else 100 * c for c in costs]
            ax.scatter(xs, ys, c=values, cmap="RdYlGn_r", s=16, zorder=3)
            for x, y, v in zip(xs, ys, values):
                if not np.isnan(v):
                    ax.annotate(f"{v:+.1f}%", (x, y), fontsize=5, xytext=(2, 3), textcoords="offset points")
        else:
            ax.scatter(xs, ys, s=16, zorder=3, color="tab:blue")
        ax.step(xs, ys, where="post", color="grey", linewidth=0.6, zorder=2)
        picks = ((head.best, "best fit = readable"),) if head.best.program == head.readable.program else (
            (head.readable, "readable"), (head.best, "best fit"))
        for e, name in picks:
            ax.annotate(name, (e.length, e.iou), fontsize=6, xytext=(3, -8), textcoords="offset points")
        ax.set_xlabel("length (AST nodes)" + (" · perplexity +% where measured" if any(
            c is not None for c in costs) else ""), fontsize=7)
        ax.set_ylabel("IoU", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3, linewidth=0.4)
        self.fig.savefig(path, format=fmt, dpi=dpi)

    def close(self) -> None:
        _pyplot().close(self.fig)


def progress_figure(curve: dict, path: pathlib.Path) -> None:
    """Writes the search curve: mean best-fit IoU over heads against programs evaluated."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 2.6))
    ax.plot(curve["programs"], curve["mean_best"], linewidth=1.2)
    ax.set_xlabel("programs evaluated", fontsize=8)
    ax.set_ylabel("mean best-fit IoU", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, linewidth=0.4)
    fig.tight_layout(pad=0.4)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label(tok: str) -> str:
    text = tok.replace("\n", "\\n").replace("$", r"\$")
    text = text if text.strip() else repr(tok)[1:-1] or "''"
    return text if len(text) <= 10 else text[:9] + "…"


def draw_heads(items: list, causal: bool, out: pathlib.Path, fmt: str, paper: bool) -> None:
    """Writes the figures for a chunk of heads (one worker's share): the report's, or with `paper` a paper's."""
    if paper:
        for head in items:
            paper_figure(head, causal, out / f"{head.label}.{fmt}", fmt)
        return
    fronts = FrontPainter()
    try:
        for head in items:
            for ex in head.examples:
                n = min(len(ex.tokens), MAX_TOKENS)
                heatmap(ex.head[:n, :n], causal, out / heatmap_name(head.label, ex.kind, "head"))
                heatmap(ex.program[:n, :n], causal, out / heatmap_name(head.label, ex.kind, "program"))
            fronts.draw(head, out / f"{head.label}-front.{fmt}", fmt)
    finally:
        fronts.close()


def heatmap_name(label: str, kind: str, who: str) -> str:
    """Returns the file name of one heatmap: head `label`'s `who` ("head" or "program") on its `kind` sentence."""
    return f"{label}-{kind}-{who}.png"
