"""The replacement schedule, its baselines, the `evo replace` command, JSON and plot."""

import json
import pathlib

import numpy as np
import pytest

from evo import cli, perplexity, replace
from evo.errors import UserError

SEEDS = pathlib.Path(__file__).resolve().parent.parent / "seeds"
PROGRAMS = ("previous_token", "first_token", "self_token", "uniform_causal")


def _write_export(root: pathlib.Path, model: str, n_layers: int, n_heads: int, broken: str | None = None):
    """Writes an export dir whose head (l, h) has program PROGRAMS[(l + h) % 4] with IoU falling by index."""
    (root / "programs").mkdir(parents=True)
    for name in PROGRAMS:
        (root / "programs" / f"{name}.py").write_text((SEEDS / f"{name}.py").read_text())
    if broken:
        (root / "programs" / "broken.py").write_text("def attention(tokens):\n    return 1 / 0\n")
    heads = []
    for layer in range(n_layers):
        for head in range(n_heads):
            k = layer * n_heads + head
            name = PROGRAMS[k % 4] if broken != f"{layer}.{head}" else "broken"
            heads.append({"layer": layer, "head": head, "front": [
                {"program": name, "iou": round(0.9 - 0.05 * k, 3), "length": 20, "ppl_increase": None},
                {"program": "uniform_causal", "iou": 0.1, "length": 5, "ppl_increase": None}]})
    (root / "front.json").write_text(json.dumps({"model": model, "heads": heads}))
    return root


class FakeMeter:
    """A meter whose perplexity is 10 times the product of fixed per-head factors."""

    metric = perplexity.PERPLEXITY
    settings = perplexity.Settings()
    ids = [[1, 2, 3]]
    n_tokens = 2

    def __init__(self, factors, failing=()):
        self.factors = factors
        self.failing = set(failing)
        self.baseline = 10.0

    def matrices(self, source):
        if source in self.failing:
            raise perplexity.ProgramError("boom")
        return [np.eye(3)]

    def measure(self, replacements):
        return self.baseline * float(np.prod([self.factors[h] for h in replacements]))

    def uniform_matrices(self):
        return [np.eye(3)]

    def cost(self, value):
        return value / self.baseline - 1


def _candidates(n):
    return [replace.Candidate(k // 2, k % 2, f"p{k}", f"source {k}", 0.9 - 0.1 * k) for k in range(n)]


def test_greedy_skips_heads_over_the_threshold_and_stops_at_the_target():
    factors = {(0, 0): 1.1, (0, 1): 1.8, (1, 0): 1.2, (1, 1): 1.05, (2, 0): 1.0}
    meter = FakeMeter(factors)
    replaced, skipped = replace.greedy(meter, _candidates(5), target=3, threshold=0.5)
    assert [(s.candidate.layer, s.candidate.head) for s in replaced] == [(0, 0), (1, 0), (1, 1)]
    assert [(s.candidate.layer, s.candidate.head) for s in skipped] == [(0, 1)]
    assert skipped[0].marginal == pytest.approx(0.8)
    assert replaced[1].marginal == pytest.approx(0.2)
    assert replaced[-1].value == pytest.approx(10 * 1.1 * 1.2 * 1.05)


def test_greedy_skips_failing_programs_with_the_reason():
    meter = FakeMeter({(0, 0): 1.1, (0, 1): 1.1}, failing={"source 0"})
    replaced, skipped = replace.greedy(meter, _candidates(2), target=2, threshold=0.5)
    assert [s.candidate.program for s in replaced] == ["p1"]
    assert skipped[0].reason == "program failed: boom"


def test_run_orders_heads_by_iou_and_reports_the_contract_keys():
    candidates = _candidates(4)[::-1]
    best = replace.Best("m", n_layers=2, n_heads=2, candidates=candidates, origin="x")
    meter = FakeMeter({(0, 0): 1.1, (0, 1): 1.2, (1, 0): 1.3, (1, 1): 1.4})
    report = replace.run(meter, best, fraction=0.5, threshold=0.5, seed=3)
    assert [(e["layer"], e["head"]) for e in report["replaced"]] == [(0, 0), (0, 1)]
    assert report["fraction"] == 0.5
    assert report["baseline_ppl"] == 10.0
    assert report["replaced_ppl"] == pytest.approx(10 * 1.1 * 1.2)
    assert report["increase"] == pytest.approx(1.1 * 1.2 - 1)
    assert set(report["baselines"]) == {"uniform", "random"}
    assert [p["heads"] for p in report["curve"]] == [0, 1, 2]
    assert len(report["random_heads"]) == 2


def test_random_baseline_depends_only_on_the_seed():
    best = _candidates(4)
    meter = FakeMeter({(0, 0): 1.1, (0, 1): 1.2, (1, 0): 1.3, (1, 1): 1.4})
    a = replace.random_baseline(meter, best, 2, np.random.default_rng(7))
    b = replace.random_baseline(meter, best, 2, np.random.default_rng(7))
    assert a == b


def test_parse_heads_reads_layer_dot_head_pairs():
    assert replace.parse_heads("3.1, 5.0") == [(3, 1), (5, 0)]
    with pytest.raises(UserError, match="LAYER.HEAD"):
        replace.parse_heads("3,1")
    with pytest.raises(UserError, match="twice"):
        replace.parse_heads("3.1,3.1")


def test_explicit_heads_without_programs_are_a_user_error(tmp_path):
    export = _write_export(tmp_path / "exp", "m", 2, 2)
    best = replace.load_best(export)
    with pytest.raises(UserError, match="no program for head"):
        replace.run(FakeMeter({}), best, heads=[(5, 0)])


def test_load_best_takes_each_heads_highest_iou_program(tmp_path):
    best = replace.load_best(_write_export(tmp_path / "exp", "m", 2, 2))
    assert (best.n_layers, best.n_heads) == (2, 2)
    assert [c.program for c in best.candidates] == list(PROGRAMS)
    assert best.candidates[0].source == (SEEDS / "previous_token.py").read_text()


def test_load_best_rejects_other_directories(tmp_path):
    with pytest.raises(UserError, match="neither an export"):
        replace.load_best(tmp_path)


def test_load_best_names_a_missing_program_file(tmp_path):
    export = _write_export(tmp_path / "exp", "m", 1, 2)
    (export / "programs" / "first_token.py").unlink()
    with pytest.raises(UserError, match="first_token.py is missing"):
        replace.load_best(export)


def test_evo_replace_writes_json_and_plot(tmp_path, tiny_gpt2_dir, capsys):
    export = _write_export(tmp_path / "exp", str(tiny_gpt2_dir), 2, 4, broken="0.1")
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    status = cli.main(["replace", str(export), "--fraction", "0.5", "--threshold", "10",
                       "--json", str(out), "--plot", str(png), "--seed", "1"])
    assert status == 0
    report = json.loads(out.read_text())
    assert report["metric"] == "perplexity"
    assert len(report["replaced"]) == 4
    assert report["skipped"][0]["reason"].startswith("program failed")
    assert report["increase"] == pytest.approx(report["replaced_ppl"] / report["baseline_ppl"] - 1)
    assert report["baselines"]["uniform"] != report["replaced_ppl"]
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "replaced 4 heads (50.0%)" in capsys.readouterr().out


def test_evo_replace_with_explicit_heads_on_an_encoder(tmp_path, tiny_bert_dir):
    export = _write_export(tmp_path / "exp", str(tiny_bert_dir), 2, 4)
    out = tmp_path / "r.json"
    assert cli.main(["replace", str(export), "--heads", "1.2,0.3", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["metric"] == "cosine"
    assert [(e["layer"], e["head"]) for e in report["replaced"]] == [(1, 2), (0, 3)]
    assert 0 < report["replaced_cosine"] < 1
    assert report["baseline_cosine"] == pytest.approx(1.0)


@pytest.mark.parametrize("flags, message", [
    (["--heads", "0.1", "--fraction", "0.5"], "not both"),
    (["--fraction", "1.5"], "must be in"),
    (["--sentences", "0"], "at least 1"),
])
def test_evo_replace_rejects_bad_flags(tmp_path, tiny_gpt2_dir, capsys, flags, message):
    export = _write_export(tmp_path / "exp", str(tiny_gpt2_dir), 2, 4)
    assert cli.main(["replace", str(export), *flags]) == 2
    assert message in capsys.readouterr().err


def test_model_with_other_heads_is_rejected(tmp_path, tiny_gpt2_dir, capsys):
    export = _write_export(tmp_path / "exp", str(tiny_gpt2_dir), 3, 4)
    assert cli.main(["replace", str(export)]) == 2
    assert "3 layers x 4 heads" in capsys.readouterr().err
