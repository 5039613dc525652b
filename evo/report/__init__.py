"""`evo report`: one folder, index.html plus its figures, that shows every head next to its program.

    results  <- evo.results.load(SOURCE)              # a run or an export
    heads    <- per head: picks, detectors, best / median / worst sentence (evo.report.data)
    figures  <- heatmaps and fronts per head, in parallel (evo.report.figures)
    page     <- index.html from a Jinja2 template, programs highlighted by Pygments (evo.report.page)

The page needs no network and no server: styles are inline, figures are files beside it,
and a head's section shows when its grid cell is followed (CSS :target).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

from evo import results, run
from evo.errors import UserError

FORMATS = ("png", "svg")


def build(source, out=None, replace_json=None, figures_dir=None, fmt: str = "png", workers: int = 2,
          readable_nodes: int | None = None, sentences: int | None = None) -> pathlib.Path:
    """Writes the report (and, with `figures_dir`, one figure per head in `fmt`); returns index.html's path."""
    from evo.report import data, page
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    res = results.load(source, readable_nodes, *([sentences] if sentences else []))
    out = pathlib.Path(out) if out else res.source / run.REPORT
    _check_out(out)
    replaced = _replacement(replace_json, res) if replace_json else None
    curve, ledger = _run_extras(res)
    hs = data.heads(res)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "figures").mkdir(parents=True)
    try:
        _draw(hs, res.causal, tmp / "figures", "png", False, workers)
        if curve:
            from evo.report import figures
            figures.progress_figure(curve, tmp / "figures" / "progress.png")
        if replaced:
            from evo import replace
            replace.plot(replaced, tmp / "figures" / "replacement.png")
        (tmp / "index.html").write_text(page.render(res, hs, data.overview(res, hs), curve, ledger, replaced),
                                        encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"could not write the report to {out}: {err.strerror or err}") from err
    if figures_dir:
        figures_dir = pathlib.Path(figures_dir)
        _check_out(figures_dir)
        figures_dir.mkdir(parents=True, exist_ok=True)
        _draw(hs, res.causal, figures_dir, fmt, True, workers)
    return out / "index.html"


def _check_out(out: pathlib.Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory; choose another --out")
    if not out.parent.exists():
        raise UserError(f"{out.parent} does not exist; create it or choose another --out")


def _replacement(path, res: results.Results) -> dict:
    path = pathlib.Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--replace {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"--replace {path} is not a readable `evo replace` JSON ({err})") from None
    if not isinstance(doc, dict) or not {"model", "curve", "baselines", "replaced"} <= set(doc):
        raise UserError(f"--replace {path} is not an `evo replace` JSON (needs model, curve, baselines, replaced)")
    if doc["model"] != res.model:
        raise UserError(f"--replace {path} is for model {doc['model']!r}, the report is for {res.model!r}")
    from evo import replace

    try:
        return replace.complete(doc)
    except (KeyError, IndexError, TypeError, ZeroDivisionError) as err:
        raise UserError(f"--replace {path} is not a complete `evo replace` JSON ({type(err).__name__}: {err})") from None


def _run_extras(res: results.Results):
    """Returns the run log's curve and the LLM ledger, from the run (an export names its run, if still here)."""
    from evo.report import data
    run_dir = res.source if res.kind == "run" else pathlib.Path(str(res.info.get("run") or ""))
    if res.kind == "export" and not (run_dir / run.LOG).is_file():
        return None, None
    return data.progress(run_dir, len(res.heads)), data.llm_ledger(run_dir)


def _draw(hs, causal: bool, out: pathlib.Path, fmt: str, paper: bool, workers: int) -> None:
    from joblib import Parallel, delayed

    from evo.report import figures
    chunks = [hs[i::max(1, workers)] for i in range(max(1, workers))]
    if workers <= 1 or len(hs) < 8:
        figures.draw_heads(hs, causal, out, fmt, paper)
        return
    Parallel(n_jobs=workers, backend="loky")(
        delayed(figures.draw_heads)(chunk, causal, out, fmt, paper) for chunk in chunks if chunk)
