"""`evo report`: the page, its figures, and one-line errors for what is missing."""

from __future__ import annotations

import json
import pathlib
import re
import shutil

import numpy as np
import pytest

from evo import cli, report
from evo.errors import UserError
from evo.report import detectors


def test_report_of_a_run_has_a_grid_cell_and_a_section_per_head(cli_run, capsys):
    assert cli.main(["report", str(cli_run)]) == 0
    index = cli_run / "report" / "index.html"
    html = index.read_text()
    assert len(re.findall(r'<a class="cell" href="#L\d+\.H\d+"', html)) == 4
    assert len(re.findall(r'<section class="head" id="L\d+\.H\d+"', html)) == 4
    for label in ("L0.H0", "L0.H1", "L1.H0", "L1.H1"):
        for kind in ("best", "median", "worst"):
            for who in ("head", "program"):
                name = f"{label}-{kind}-{who}.png"
                assert f'src="figures/{name}"' in html
                assert (index.parent / "figures" / name).stat().st_size > 60
        assert (index.parent / "figures" / f"{label}-front.png").is_file()
    assert (index.parent / "figures" / "progress.png").is_file()
    assert 'class="highlight"' in html or "<span" in html  # Pygments marked the programs up
    assert "http://" not in html and "https://" not in html  # nothing to fetch


def test_report_of_an_export_and_figures_for_a_paper(cli_run, tmp_path):
    figs = tmp_path / "figs"
    index = report.build(cli_run / "out", tmp_path / "rep", figures_dir=figs, fmt="svg", workers=1)
    assert 'src="figures/progress.png"' in index.read_text()  # the export names its run, whose log is still here
    svgs = sorted(p.name for p in figs.glob("*.svg"))
    assert svgs == ["L0.H0.svg", "L0.H1.svg", "L1.H0.svg", "L1.H1.svg"]
    assert svgs and (figs / svgs[0]).read_text().lstrip().startswith("<?xml")


def test_a_run_with_no_log_is_a_one_line_error(cli_run, tmp_path, capsys):
    copy = tmp_path / "nolog"
    shutil.copytree(cli_run, copy, ignore=shutil.ignore_patterns("log.jsonl", "out"))
    assert cli.main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no run log" in err and len(err.splitlines()) == 1


def test_an_export_with_no_programs_is_a_one_line_error(cli_run, tmp_path, capsys):
    copy = tmp_path / "empty"
    shutil.copytree(cli_run / "out", copy)
    shutil.rmtree(copy / "programs")
    assert cli.main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing" in err and len(err.splitlines()) == 1


def test_a_replace_json_from_another_model_is_a_one_line_error(cli_run, tmp_path, capsys):
    other = tmp_path / "r.json"
    other.write_text(json.dumps({"model": "gpt2", "curve": [], "baselines": {}, "replaced": []}))
    assert cli.main(["report", str(cli_run), "--replace", str(other)]) == 2
    assert "for model 'gpt2'" in capsys.readouterr().err
    assert not (cli_run / "report").exists()  # checked before anything was drawn


def test_a_replace_json_adds_its_curve_and_order(cli_run, tmp_path):
    doc = {"model": "synthetic", "metric": "perplexity", "fraction": 0.5, "heads_total": 4, "sentences": 3,
           "tokens": 30, "baselines": {"uniform": 30.0, "random": 12.0},
           "curve": [{"heads": 0, "fraction": 0.0, "value": 10.0}, {"heads": 1, "fraction": 0.25, "value": 10.5},
                     {"heads": 2, "fraction": 0.5, "value": 11.0}],
           "replaced": [{"layer": 1, "head": 0, "program": "p1"}, {"layer": 0, "head": 1, "program": "p2"}]}
    (tmp_path / "r.json").write_text(json.dumps(doc))
    index = report.build(cli_run, tmp_path / "rep", replace_json=tmp_path / "r.json", workers=1)
    html = index.read_text()
    assert 'id="replacement"' in html and html.index('href="#L1.H0"') < html.rindex('href="#L0.H1"')
    assert (index.parent / "figures" / "replacement.png").is_file()


def test_out_that_is_a_file_is_a_one_line_error(cli_run, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert cli.main(["report", str(cli_run), "--out", str(tmp_path / "file")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_detectors_score_the_classic_patterns():
    tokens = ["<bos>", "a", "b", "c", "a", "b"]
    n = len(tokens)
    prev = np.eye(n, k=-1)
    prev[0, 0] = 1
    induction = np.zeros((n, n))
    induction[:, 0] = 1.0
    induction[4] = 0
    induction[4, 2] = 1.0  # query "a" (4) attends to "b" (2), the token after the earlier "a" (1)
    scores = detectors.Scores(2)
    scores.add(tokens, np.stack([prev, induction]))
    got = dict(zip(detectors.NAMES, scores.result()))
    assert got["previous-token"][0] == pytest.approx(1.0) and got["previous-token"][1] == pytest.approx(0.2)
    assert got["induction"][1] == pytest.approx(0.5)  # rows 4 and 5 have an earlier copy; row 4 follows it


@pytest.mark.integration
def test_report_of_a_real_search_opens_in_chromium(tmp_path):
    from browser import page
    run_dir = tmp_path / "run"
    assert cli.main(["search", "--run-dir", str(run_dir), "--max-programs", "40", "--batch-size", "8",
                     "--workers", "2", "--seed", "7"]) == 0
    index = report.build(run_dir, tmp_path / "report")
    shots = pathlib.Path(__file__).resolve().parents[1] / "runs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with page() as (pg, errors):
        pg.goto(index.resolve().as_uri())
        pg.wait_for_load_state("load")
        assert pg.locator("#head-grid a.cell").count() == 72
        pg.screenshot(path=str(shots / "report-top.png"))
        pg.locator('#head-grid a.cell[href="#L5.H1"]').click()   # the family grid (the IoU grid links too)
        section = pg.locator('section[id="L5.H1"]')
        assert section.is_visible() and not pg.locator('section[id="L5.H2"]').is_visible()
        pg.wait_for_function("() => { const i = [...document.querySelectorAll('section[id=\"L5.H1\"] img.hm')];"
                             " return i.length == 6 && i.every(x => x.complete && x.naturalWidth > 0); }",
                             timeout=10000)
        labels = section.locator(".ylab").first.inner_text().split("\n")
        assert labels[0] == "<bos>" and len(labels) > 3   # the tokens label the rows
        png = pg.screenshot(path=str(shots / "report-head.png"))
        assert errors == []
    from PIL import Image
    import io
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    assert pixels.std() > 10  # not blank


def test_heatmap_has_a_pixel_per_cell_and_a_blank_masked_half(tmp_path):
    from PIL import Image

    from evo.report import figures
    m = np.tril(np.ones((5, 5))) / np.arange(1, 6)[:, None]
    figures.heatmap(m, True, tmp_path / "causal.png")
    figures.heatmap(m, False, tmp_path / "full.png")
    causal = np.asarray(Image.open(tmp_path / "causal.png"))
    assert causal.shape == (5, 5, 4)
    assert (causal[np.triu_indices(5, 1)][:, 3] == 0).all() and (causal[np.tril_indices(5)][:, 3] == 255).all()
    assert causal[0, 0, :3].sum() < causal[4, 4, :3].sum()   # weight 1 darker than weight 0.2
    assert (np.asarray(Image.open(tmp_path / "full.png"))[..., 3] == 255).all()
