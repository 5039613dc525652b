"""index.html: the Jinja2 template filled with the report's data; programs highlighted by Pygments."""

from __future__ import annotations

import jinja2
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from evo.report import figures

_FORMATTER = HtmlFormatter(cssclass="code", nowrap=False)


def colour(iou: float) -> str:
    """Returns the grid colour for an IoU: matplotlib's viridis, 0 dark to 1 bright."""
    from matplotlib import colormaps
    r, g, b, _ = colormaps["viridis"](max(0.0, min(1.0, float(iou))))
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


FAMILY_COLOURS = {"sink": "#4c4c4c", "previous-token": "#e4572e", "self": "#17bebb", "local": "#ffc914",
                  "duplicate-token": "#76b041", "induction": "#2e86ab", "delimiter": "#a23b72",
                  "syntactic": "#6a4c93", "part-of-speech": "#f18f01", "content": "#8c564b", "mixed": "#b8b8b8",
                  "unmeasured": "#e0e0e0"}


def family_colour(name: str) -> str:
    """Returns the grid colour of a head family."""
    return FAMILY_COLOURS.get(name, "#e0e0e0")


def cell(n: int) -> int:
    """Returns the pixels per heatmap cell for an n-token sentence: three sentences fit side by side."""
    return 12 if n <= 16 else (10 if n <= 24 else 8)


def render(res, heads, overview: dict, curve, ledger, replaced) -> str:
    """Returns the whole page."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("evo.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    env.filters["colour"] = colour
    env.filters["labels"] = figures.example_labels
    env.globals.update(heatmap=figures.heatmap_name, cell=cell, max_tokens=figures.MAX_TOKENS,
                       family_colour=family_colour)
    env.filters["code"] = lambda source: jinja2.utils.markupsafe.Markup(highlight(source, PythonLexer(), _FORMATTER))
    grid = [[None] * overview["per_layer"] for _ in range(overview["layers"])]
    for h in heads:
        grid[h.layer][h.head] = h
    template = env.get_template("index.html.j2")
    return template.render(res=res, heads=heads, ov=overview, grid=grid, curve=curve, ledger=ledger,
                           replaced=replaced, sources=res.sources,
                           code_css=_FORMATTER.get_style_defs(".code"), show_numbers=overview["per_layer"] <= 16)
