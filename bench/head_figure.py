"""Draws one head's attention beside its readable program's, with the program's source: the README's picture.

    python bench/head_figure.py EXPORT LAYER.HEAD [--sentence I] [--out docs/figures/head.png]

EXPORT is an `evo export` directory; its front.json names the head's readable program.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from evo import explain, results  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export", help="an evo export directory")
    p.add_argument("head", help="LAYER.HEAD, e.g. 2.3")
    p.add_argument("--sentence", type=int, default=3, help="sentence of the run's attention set (default: 3)")
    p.add_argument("--out", default="docs/figures/head.png", help="where to write the PNG")
    args = p.parse_args(argv)
    res = results.load(pathlib.Path(args.export))
    k = res.index(args.head)
    layer, head = res.heads[k]
    pick = res.readable(k)
    cmp = explain.compare(res, k, pick.program, args.sentence)
    label = f"L{layer}.H{head} ({res.told(k).family})"
    draw(cmp, _code(res.sources[pick.program]), label, pick, pathlib.Path(args.out))
    print(f"wrote {args.out}: L{layer}.H{head} sentence {args.sentence}, IoU on it {cmp.iou:.2f}")
    return 0


def _code(source: str) -> str:
    """Returns the program without its docstring (the account is the figure's title)."""
    import ast

    tree = ast.parse(source)
    doc = ast.get_docstring(tree, clean=False)
    if doc is None:
        return source.strip()
    end = tree.body[0].end_lineno
    return "\n".join(_wrap(line) for line in source.splitlines()[end:]).strip()


def _wrap(line: str, width: int = 58) -> str:
    """Returns a long `from m import a, b, c` line broken into a parenthesised list (the figure is narrow)."""
    import textwrap

    if len(line) <= width or not line.startswith("from ") or " import " not in line:
        return line
    head, names = line.split(" import ", 1)
    body = textwrap.fill(names, width - 4, initial_indent="    ", subsequent_indent="    ")
    return f"{head} import (\n{body})"


def draw(cmp, code: str, label: str, pick: dict, out: pathlib.Path) -> None:
    """Writes the head's heatmap, the program's heatmap and the source side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(cmp.tokens)
    ticks = [t.replace(" ", "·") for t in cmp.tokens]
    fig = plt.figure(figsize=(15, 5.2), dpi=110)
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 1, 1.1], wspace=0.3)
    for i, (matrix, title) in enumerate(((cmp.head, f"{label}: the head's attention"),
                                         (cmp.program, f"its readable program (IoU {cmp.iou:.2f})"))):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(n), ticks, rotation=90, fontsize=7)
        ax.set_yticks(range(n), ticks, fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("key (attended to)", fontsize=8)
        if i == 0:
            ax.set_ylabel("query", fontsize=8)
    ax = fig.add_subplot(grid[0, 2])
    ax.axis("off")
    ax.text(0, 0.93, code, family="monospace", fontsize=8.5, va="top", ha="left", transform=ax.transAxes)
    ax.set_title(f"{pick.length} AST nodes, mean IoU {pick.iou:.2f} on the search text", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
