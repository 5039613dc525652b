"""End to end on the real default model: search a few dozen programs, export, re-score."""

from __future__ import annotations

import json

import pytest

from evo import cli, evaluate
from evo.search import archive


@pytest.mark.integration
def test_tiny_search_on_gemma_improves_on_seeds_and_exports_reproducible_scores(tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "front"
    assert cli.main(["search", "--run-dir", str(run_dir), "--max-programs", "50", "--batch-size", "12",
                     "--workers", "2", "--seed", "7"]) == 0
    state = json.loads((run_dir / "checkpoint.json").read_text())
    seeds = [r for r in state["archive"]["records"] if r["generation"] == 0]
    assert state["spent"]["programs"] == 50 and len(seeds) < 50
    assert cli.main(["export", str(run_dir), "--out", str(out)]) == 0
    doc = json.loads((out / "front.json").read_text())
    assert doc["model"] == "gemma-3-270m" and len(doc["heads"]) == 18 * 4
    config = json.loads((run_dir / "config.json").read_text())
    paths = sorted((out / "programs").glob("*.py"))
    results = dict(zip([p.stem for p in paths],
                       evaluate.evaluate([p.read_text() for p in paths], config["attention_set"]["path"],
                                         workers=2)))
    for k, head in enumerate(doc["heads"]):
        best = max(head["front"], key=lambda e: e["iou"])
        assert float(results[best["program"]].iou[k]) == pytest.approx(best["iou"], abs=1e-5)
    arch = archive.Archive.from_state(state["archive"])
    seeds_mean = arch.iou[: len(seeds)].max(0).mean()
    assert doc["mean_best_iou"] > seeds_mean


@pytest.mark.integration
def test_every_exported_file_of_a_real_search_is_canonical_standalone_and_accounted_for(tmp_path):
    import re

    from canonical_checks import defined_twice, placeholder_names, runs_standalone, unused_helpers
    from operators.shared import mixing
    run_dir, out = tmp_path / "run", tmp_path / "front"
    assert cli.main(["search", "--run-dir", str(run_dir), "--max-programs", "60", "--requests-per-generation", "12",
                     "--workers", "2", "--seed", "11"]) == 0
    assert cli.main(["export", str(run_dir), "--out", str(out)]) == 0
    doc = json.loads((out / "front.json").read_text())
    for path in sorted((out / "programs").glob("*.py")):
        text = path.read_text()
        assert defined_twice(text) == [] and unused_helpers(text) == [] and placeholder_names(text) == [], path.name
        assert runs_standalone(path) is None, path.name
    for head in doc["heads"]:
        for pick in (head["best"], head["simplest"]):
            mix = mixing.read((out / "programs" / f"{pick['program']}.py").read_text(), True)
            if mix.wrapped:
                continue
            shares = [int(x) for x in re.findall(r"(?:^|; )(\d+) % ", pick["account"])]
            assert abs(sum(shares) - 100) <= 1, pick
            total = sum(t.weight for t in mix.terms)
            assert shares == [round(100 * t.weight / total) for t in mix.terms], pick
