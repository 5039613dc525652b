"""Export: program files with headers, front.json, best_per_head.csv, and the IoU round trip."""

from __future__ import annotations

import csv
import re
import json

import numpy as np
import pytest

from evo import cli, evaluate, program, run, search
from evo.search import export
from evo.errors import UserError
from test_search_toys import SEEDS, TARGETS, ToyEvaluator, engine


@pytest.fixture
def toy_run(tmp_path):
    run_dir = tmp_path / "run"
    e = engine(run_dir, budget=search.Budget(max_programs=50))
    run.save_config(run_dir, run.RunConfig(
        model="toy", corpus=None, split="search", sentence_tokens=64,
        attention_set={"path": "", "n_layers": 2, "n_heads": 3, "fingerprint": "toy", "corpus": {"source": "toy:corpus"}},
        captured=False, seed=0, budgets={}, settings={}, operators={"operators": "offline"}))
    e.seed(SEEDS)
    e.run()
    return run_dir, e


def test_export_writes_every_front_program_with_a_header_and_the_same_key(toy_run, tmp_path):
    run_dir, e = toy_run
    summary = export.export(run_dir, tmp_path / "out")
    on_fronts = {e.archive.records[i].id for f in e.fronts for i in f}
    files = {p.stem: p.read_text() for p in (tmp_path / "out" / "programs").glob("*.py")}
    assert set(files) == on_fronts and summary["programs"] == len(on_fronts)
    for pid, text in files.items():
        record = e.archive.records[e.archive.by_id[pid]]
        assert program.key(text) == record.key and program.length(text) == record.length
        assert text.startswith('"""') and "On the Pareto front of" in text and "toy:corpus" in text


def test_front_json_and_csv_agree_with_the_archive(toy_run, tmp_path):
    run_dir, e = toy_run
    export.export(run_dir, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "front.json").read_text())
    assert doc["model"] == "toy" and doc["split"] == "search" and len(doc["heads"]) == len(TARGETS)
    assert [(h["layer"], h["head"]) for h in doc["heads"]] == [(k // 3, k % 3) for k in range(6)]
    for k, head in enumerate(doc["heads"]):
        for item in head["front"]:
            assert set(item) == {"program", "iou", "length", "ppl_increase", "account"} and item["ppl_increase"] is None
            assert item["iou"] == pytest.approx(float(e.archive.iou[e.archive.by_id[item["program"]], k]), abs=1e-6)
    rows = list(csv.DictReader(open(tmp_path / "out" / "best_per_head.csv")))
    assert [float(r["iou"]) for r in rows] == pytest.approx(e.best.tolist(), abs=1e-6)
    assert doc["mean_best_iou"] == pytest.approx(float(e.best.mean()), abs=1e-6)


def test_exported_programs_score_as_front_json_says(toy_run, tmp_path):
    run_dir, _ = toy_run
    export.export(run_dir, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "front.json").read_text())
    paths = sorted((tmp_path / "out" / "programs").glob("*.py"))
    scores = dict(zip([p.stem for p in paths], ToyEvaluator()([p.read_text() for p in paths])))
    for k, head in enumerate(doc["heads"]):
        for item in head["front"]:
            assert scores[item["program"]].iou[k] == pytest.approx(item["iou"], abs=1e-6)


def test_export_refuses_a_directory_that_is_not_an_export(toy_run, tmp_path):
    run_dir, _ = toy_run
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an earlier export"):
        export.export(run_dir, tmp_path / "busy")
    export.export(run_dir, tmp_path / "again")
    export.export(run_dir, tmp_path / "again")  # re-exporting over an export is fine


def test_header_replaces_a_docstring_and_survives_one_sharing_its_line():
    src = '"""Old."""\nimport numpy as np\n\ndef attention(tokens):\n    return np.eye(len(tokens))\n'
    out = export.with_header(src, 'New """ header\nline two')
    assert '"""New' in out and "Old." not in out and program.key(out) == program.key(src)
    odd = '"""Old."""; import numpy as np\n\ndef attention(tokens):\n    return np.eye(len(tokens))\n'
    out = export.with_header(odd, "New")
    assert out.startswith("# New\n") and program.key(out) == program.key(odd)


def test_cli_export_round_trip_on_a_real_attention_set(tiny_attention_set, tmp_path):
    run_dir = tmp_path / "r"
    args = ["search", "--attention-set", str(tiny_attention_set.path), "--run-dir", str(run_dir),
            "--max-programs", "30", "--workers", "1", "--seed", "3"]
    assert cli.main(args) == 0
    assert cli.main(["export", str(run_dir), "--out", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "front.json").read_text())
    assert doc["model"] == "synthetic" and doc["attention_set"]["corpus"]["source"] == "tests:synthetic"
    paths = sorted((tmp_path / "out" / "programs").glob("*.py"))
    results = dict(zip([p.stem for p in paths],
                       evaluate.evaluate([p.read_text() for p in paths], tiny_attention_set.path)))
    for k, head in enumerate(doc["heads"]):
        for item in head["front"]:
            assert results[item["program"]].ok
            assert float(results[item["program"]].iou[k]) == pytest.approx(item["iou"], abs=1e-6)
    best = [max(h["front"], key=lambda x: x["iou"])["iou"] for h in doc["heads"]]
    assert doc["mean_best_iou"] == pytest.approx(float(np.mean(best)), abs=1e-6)


def test_each_head_gets_a_best_a_simplest_and_a_readable_pick_with_accounts(toy_run, tmp_path):
    run_dir, _ = toy_run
    export.export(run_dir, tmp_path / "out", readable_nodes=15)
    doc = json.loads((tmp_path / "out" / "front.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "out" / "best_per_head.csv")))
    for head, row in zip(doc["heads"], rows):
        best, simplest = head["best"], head["simplest"]
        assert best["iou"] == max(e["iou"] for e in head["front"])
        within = [e for e in head["front"] if e["iou"] >= best["iou"] - export.SIMPLEST_MARGIN - 1e-9]
        assert simplest["length"] == min(e["length"] for e in within) and simplest in within
        readable = head["readable"]
        short = [e for e in head["front"] if e["length"] <= 15]
        assert readable["iou"] == max(e["iou"] for e in short) and readable["length"] <= 15
        assert best["iou_gain"] == pytest.approx(best["iou"] - readable["iou"], abs=1e-6)
        assert head["family"] == "unmeasured" and readable["shares"] == {"text": None, "patterns": []}
        assert head["account"].startswith(f"L{head['layer']}.H{head['head']} unmeasured (IoU ")
        assert row["simplest_program"] == simplest["program"] and row["readable_program"] == readable["program"]
        assert row["program"] == best["program"] and row["family"] == head["family"]
    assert doc["readable_nodes"] == 15


def test_exported_files_name_each_thing_once_and_run_on_their_own(cli_run):
    from canonical_checks import defined_twice, runs_standalone, unused_helpers
    out = cli_run / "out"
    for path in sorted((out / "programs").glob("*.py")):
        text = path.read_text()
        assert defined_twice(text) == [] and unused_helpers(text) == [], path.name
        assert runs_standalone(path) is None, path.name
        assert text.splitlines()[0].startswith('"""L'), path.name  # the account comes first


def test_explain_lists_every_head_and_explains_one_with_a_heatmap(cli_run, capsys):
    assert cli.main(["explain", str(cli_run)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    heads = [x for x in lines if re.match(r"L\d+\.H\d+ +[a-z-]+ +[01]\.\d{3} +\d+  first \d+ \(\d+\)", x)]
    assert len(heads) == 2 * 2 and len(lines) <= 2 * 2 + 8 and all(len(x) <= 100 for x in lines)
    assert lines[-1].startswith("families: ")
    for source in (cli_run, cli_run / "out"):
        assert cli.main(["explain", str(source), "1.1", "--sentence", "1"]) == 0
        text = capsys.readouterr().out
        assert "L1.H1 " in text and "(readable, IoU" in text and "head's top 3 keys" in text


@pytest.mark.parametrize("args, message", [
    (["1.9"], "no head 1.9"), (["x"], "not of the form L.H"), (["0.0", "--sentence", "99"], "out of range")])
def test_explain_bad_input_is_a_one_line_error(cli_run, capsys, args, message):
    code = cli.main(["explain", str(cli_run)] + args)
    err = capsys.readouterr()
    if message == "out of range":  # the account still prints; the heatmap says why it is missing
        assert code == 0 and message in err.out
    else:
        assert code == 2 and message in err.err and len(err.err.strip().splitlines()) == 1


def test_explain_of_a_missing_source_is_a_one_line_error(tmp_path, capsys):
    assert cli.main(["explain", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_costs_measured_by_replace_show_in_the_export(toy_run, tmp_path):
    from evo import costs

    toy_run, _ = toy_run
    first = export.collect(toy_run)
    entry = first.fronts[1][0]
    layer, head = first.heads[1]
    where = costs.record(toy_run, [{"layer": layer, "head": head, "program": entry.program, "cost": 0.031,
                                    "cost_se": 0.004}], {"sentences": 64})
    assert where == toy_run / "costs.json"
    again = export.collect(toy_run)
    assert again.fronts[1][0].ppl_increase == pytest.approx(0.031)
    assert costs.load(toy_run)[(layer, head, entry.program)] == {"cost": 0.031, "cost_se": 0.004}
    (toy_run / "costs.json").write_text("{broken")
    with pytest.raises(UserError, match="costs"):
        export.collect(toy_run)
