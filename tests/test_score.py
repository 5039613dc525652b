"""Tests for `evo score`: collecting program files, the report and its JSON contract."""

import json
import pathlib

import pytest

from evo import cli, score
from evo.errors import UserError

SEEDS = pathlib.Path(__file__).parent.parent / "seeds"
BROKEN = "def attention(tokens):\n    raise ValueError('no [idea]')\n"


@pytest.fixture
def programs(tmp_path):
    """Returns a directory holding three seed copies and one failing program."""
    d = tmp_path / "progs"
    d.mkdir()
    for name in ("previous_token", "first_token", "uniform_causal"):
        (d / f"{name}.py").write_text((SEEDS / f"{name}.py").read_text())
    (d / "broken.py").write_text(BROKEN)
    (d / "notes.txt").write_text("not a program")
    return d


def test_collect_takes_py_files_from_directories_and_named_files(programs):
    files = score.collect([str(programs), str(programs / "broken.py")])
    assert [f.name for f in files] == ["broken.py", "first_token.py", "previous_token.py",
                                        "uniform_causal.py"]


def test_collect_rejects_missing_paths_and_directories_without_programs(tmp_path):
    with pytest.raises(UserError, match="no such file or directory"):
        score.collect([str(tmp_path / "missing.py")])
    with pytest.raises(UserError, match="no .py files in directory"):
        score.collect([str(tmp_path)])


def test_report_names_best_program_per_head_and_lists_failures(programs, tiny_attention_set):
    report = score.score([str(programs)], tiny_attention_set)
    assert report["model"] == "synthetic" and report["n_sentences"] == 3 and report["n_programs"] == 4
    best = {(h["layer"], h["head"]): h["best_program"] for h in report["heads"]}
    # synthetic heads: (0,0) previous token, (0,1) first token, (1,1) uniform causal
    assert best[(0, 0)] == "previous_token"
    assert best[(0, 1)] == "first_token"
    assert best[(1, 1)] == "uniform_causal"
    by_name = {p["name"]: p for p in report["programs"]}
    assert by_name["broken"]["error"] and "no [idea]" in by_name["broken"]["error"]
    assert by_name["broken"]["mean_iou"] is None
    assert by_name["previous_token"]["error"] is None
    assert 0 < by_name["previous_token"]["mean_iou"] < 1
    head_best = [h["iou"] for h in report["heads"]]
    assert report["mean_best_iou"] == pytest.approx(sum(head_best) / 4, abs=1e-5)
    assert report["heads_at_least"]["0.9"] == sum(i >= 0.9 for i in head_best)


def test_cli_writes_the_json_contract_even_when_a_program_fails(programs, tiny_attention_set, tmp_path, capsys):
    out = tmp_path / "scores.json"
    status = cli.main(["score", str(programs), "--attention-set", str(tiny_attention_set.path),
                       "--workers", "1", "--json", str(out)])
    assert status == 0
    data = json.loads(out.read_text())
    assert {"model", "n_sentences", "n_programs", "mean_best_iou", "heads", "programs"} <= set(data)
    assert set(data["heads"][0]) >= {"layer", "head", "best_program", "iou"}
    assert set(data["programs"][0]) >= {"name", "path", "length", "mean_iou", "error"}
    assert isinstance(data["mean_best_iou"], float) and data["n_programs"] == 4
    printed = capsys.readouterr().out
    assert "mean best-fit IoU" in printed and "previous_token" in printed and "1 failed" in printed


def test_cli_reports_bad_paths_as_one_line_errors(tmp_path, capsys):
    assert cli.main(["score", str(tmp_path / "none")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    (tmp_path / "a.py").write_text(BROKEN)
    assert cli.main(["score", str(tmp_path), "--json", str(tmp_path / "no" / "x.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_exits_nonzero_when_every_program_fails(tmp_path, tiny_attention_set):
    (tmp_path / "broken.py").write_text(BROKEN)
    out = tmp_path / "s.json"
    assert cli.main(["score", str(tmp_path / "broken.py"), "--attention-set",
                     str(tiny_attention_set.path), "--json", str(out)]) == 1
    data = json.loads(out.read_text())
    assert data["mean_best_iou"] is None and data["heads"][0]["best_program"] is None


@pytest.mark.integration
def test_seeds_score_on_the_default_model(tmp_path):
    out = tmp_path / "seeds.json"
    assert cli.main(["score", str(SEEDS), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["model"] == "gemma-3-270m" and len(data["heads"]) == 72
    assert all(p["error"] is None for p in data["programs"])
    assert data["mean_best_iou"] > 0.6   # measured 0.650 on the search split
