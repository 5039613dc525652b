"""The replacement schedule, its baselines, the `evo replace` command, JSON and plot."""

import json
import pathlib
import types

import numpy as np
import pytest

from evo import candidates, cli, perplexity, replace, schedule
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
    """A meter whose perplexity is 10 times the product of per-head factors (per program when keyed so).

    `factors[(layer, head)]` or `factors[((layer, head), source)]`; `together[(h1, h2)]` multiplies in
    when both heads are replaced, to model heads that interact.
    """

    metric = perplexity.PERPLEXITY
    settings = perplexity.Settings()
    ids = [[1, 2, 3]]
    n_tokens = 2
    fingerprint = "fake"

    def __init__(self, factors, failing=(), together=None):
        self.factors = factors
        self.failing = set(failing)
        self.together = together or {}
        self.baseline = 10.0
        self.reference = types.SimpleNamespace(value=10.0, inputs=None)
        self.runs = 0

    def matrices(self, source):
        if source in self.failing:
            raise perplexity.ProgramError("boom")
        return [source]

    def _factor(self, head, matrices):
        return self.factors.get((head, matrices[0]), self.factors.get(head, 1.0))

    def run(self, replacements, start=0, inputs=None, record=False):
        self.runs += 1
        value = self.baseline * float(np.prod([self._factor(h, m) for h, m in replacements.items()]))
        for (h1, h2), f in self.together.items():
            if h1 in replacements and h2 in replacements:
                value *= f
        return types.SimpleNamespace(value=value, inputs=None)

    def measure(self, replacements):
        return self.run(replacements).value

    def value(self, result):
        return result.value

    def relative(self, result, before):
        return result.value / before.value - 1.0, 0.001

    def alone(self, head, candidates):
        return [self.relative(self.run({head: m}), self.reference) for m in candidates]

    def uniform_matrices(self):
        return ["uniform"]

    def cost(self, value):
        return value / self.baseline - 1


def _candidates(n):
    return [candidates.Candidate(k // 2, k % 2, f"p{k}", f"source {k}", 0.9 - 0.1 * k) for k in range(n)]


def test_iou_schedule_skips_heads_over_the_threshold_and_stops_at_the_target():
    factors = {(0, 0): 1.1, (0, 1): 1.8, (1, 0): 1.2, (1, 1): 1.05, (2, 0): 1.0}
    meter = FakeMeter(factors)
    replaced, skipped = schedule.by_iou(meter, _candidates(5), target=3, threshold=0.5, log=print)
    assert [(s.candidate.layer, s.candidate.head) for s in replaced] == [(0, 0), (1, 0), (1, 1)]
    assert [(s.candidate.layer, s.candidate.head) for s in skipped] == [(0, 1)]
    assert skipped[0].marginal == pytest.approx(0.8)
    assert replaced[1].marginal == pytest.approx(0.2)
    assert replaced[-1].value == pytest.approx(10 * 1.1 * 1.2 * 1.05)


def test_iou_schedule_skips_failing_programs_with_the_reason():
    meter = FakeMeter({(0, 0): 1.1, (0, 1): 1.1}, failing={"source 0"})
    replaced, skipped = schedule.by_iou(meter, _candidates(2), target=2, threshold=0.5, log=print)
    assert [s.candidate.program for s in replaced] == ["p1"]
    assert skipped[0].reason == "program failed: boom"


def test_iou_schedule_orders_heads_by_iou_and_reports_the_contract_keys():
    given = _candidates(4)[::-1]
    best = candidates.Best("m", n_layers=2, n_heads=2, candidates=given, origin="x")
    meter = FakeMeter({(0, 0): 1.1, (0, 1): 1.2, (1, 0): 1.3, (1, 1): 1.4})
    report = replace.run(meter, best, fraction=0.5, plan=replace.Plan(schedule="iou", seed=3))
    assert report["schedule"] == "iou"
    assert [(e["layer"], e["head"]) for e in report["replaced"]] == [(0, 0), (0, 1)]
    assert report["fraction"] == 0.5
    assert report["baseline_ppl"] == 10.0
    assert report["replaced_ppl"] == pytest.approx(10 * 1.1 * 1.2)
    assert report["increase"] == pytest.approx(1.1 * 1.2 - 1)
    assert set(report["baselines"]) == {"uniform", "random"}
    assert [p["heads"] for p in report["curve"]] == [0, 1, 2]
    assert len(report["random_heads"]) == 2


def _options(costs: dict):
    """Returns a Best whose head (l, h) has one candidate per entry of costs[(l, h)] (best IoU first)."""
    options, factors = {}, {}
    for head, values in costs.items():
        options[head] = []
        for i, f in enumerate(values):
            source = f"source {head} {i}"
            pick = ("best", "simplest", "front")[min(i, 2)]
            options[head].append(candidates.Candidate(*head, f"p{head[0]}{head[1]}{i}", source, 0.9 - 0.1 * i, 10 + i,
                                                   pick))
            factors[(head, source)] = f
    best = candidates.Best("m", 2, 2, [o[0] for o in options.values()], "x", options)
    return best, factors


def test_cost_schedule_takes_each_heads_cheapest_program_and_cheapest_heads_first():
    best, factors = _options({(0, 0): [1.30, 1.02], (0, 1): [1.10], (1, 0): [1.05, 1.20, 1.01],
                              (1, 1): [1.50]})
    final = FakeMeter(factors)
    report = replace.run(final, best, fraction=0.75, select=FakeMeter(factors), plan=replace.Plan())
    assert report["schedule"] == "cost"
    assert [(e["layer"], e["head"], e["program"]) for e in report["replaced"]] == [
        (1, 0, "p102"), (0, 0, "p001"), (0, 1, "p010")]
    assert report["replaced_ppl"] == pytest.approx(10 * 1.01 * 1.02 * 1.10)
    chosen = [(c["layer"], c["head"], c["program"]) for c in report["candidates"] if c["chosen"]]
    assert sorted(chosen) == [(0, 0, "p001"), (0, 1, "p010"), (1, 0, "p102")]
    assert {c["program"]: c["cost"] for c in report["candidates"]}["p000"] == pytest.approx(0.30)
    assert [p["value"] for p in report["curve"]] == sorted(p["value"] for p in report["curve"])


def test_cost_schedule_remeasures_heads_that_cost_more_together():
    best, factors = _options({(0, 0): [1.01], (0, 1): [1.02], (1, 0): [1.03]})
    meter = FakeMeter(factors, together={((0, 0), (0, 1)): 1.5})
    steps = schedule.by_cost(meter, schedule.measure_alone(meter, best, 3, print), target=2, recheck=3,
                             threshold=None, log=print)
    assert [s.candidate.key for s in steps] == [(0, 0), (1, 0)]  # 0.1 alone is cheap, beside 0.0 it is not
    assert steps[1].marginal == pytest.approx(0.03)


def test_cost_schedule_stops_when_the_cheapest_head_is_over_the_threshold():
    best, factors = _options({(0, 0): [1.01], (0, 1): [1.9]})
    meter = FakeMeter(factors)
    steps = schedule.by_cost(meter, schedule.measure_alone(meter, best, 3, print), target=2, recheck=3,
                             threshold=0.5, log=print)
    assert [s.candidate.key for s in steps] == [(0, 0)]


def test_random_baseline_depends_only_on_the_seed():
    best = _candidates(4)
    meter = FakeMeter({(0, 0): 1.1, (0, 1): 1.2, (1, 0): 1.3, (1, 1): 1.4})
    a = replace.random_baseline(meter, best, 2, np.random.default_rng(7))
    b = replace.random_baseline(meter, best, 2, np.random.default_rng(7))
    assert a == b


def test_parse_heads_reads_layer_dot_head_pairs():
    assert candidates.parse_heads("3.1, 5.0") == [(3, 1), (5, 0)]
    with pytest.raises(UserError, match="LAYER.HEAD"):
        candidates.parse_heads("3,1")
    with pytest.raises(UserError, match="twice"):
        candidates.parse_heads("3.1,3.1")


def test_explicit_heads_without_programs_are_a_user_error(tmp_path):
    export = _write_export(tmp_path / "exp", "m", 2, 2)
    best = candidates.load_best(export)
    with pytest.raises(UserError, match="no program for head"):
        replace.run(FakeMeter({}), best, heads=[(5, 0)])


def test_load_best_takes_each_heads_highest_iou_program(tmp_path):
    best = candidates.load_best(_write_export(tmp_path / "exp", "m", 2, 2))
    assert (best.n_layers, best.n_heads) == (2, 2)
    assert [c.program for c in best.candidates] == list(PROGRAMS)
    assert best.candidates[0].source == (SEEDS / "previous_token.py").read_text()


def test_load_best_rejects_other_directories(tmp_path):
    with pytest.raises(UserError, match="neither an export"):
        candidates.load_best(tmp_path)


def test_load_best_names_a_missing_program_file(tmp_path):
    export = _write_export(tmp_path / "exp", "m", 1, 2)
    (export / "programs" / "first_token.py").unlink()
    with pytest.raises(UserError, match="first_token.py is missing"):
        candidates.load_best(export)


def test_evo_replace_writes_json_and_plot(tmp_path, tiny_gpt2_dir, capsys):
    export = _write_export(tmp_path / "exp", str(tiny_gpt2_dir), 2, 4, broken="0.1")
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    status = cli.main(["replace", str(export), "--schedule", "iou", "--fraction", "0.5", "--threshold", "10",
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
    both = tmp_path / "both.png"
    assert cli.main(["replace", str(export), "--schedule", "iou", "--fraction", "0.25", "--plot", str(both),
                     "--compare", str(out)]) == 0
    assert both.read_bytes()[:4] == b"\x89PNG"


def test_cost_schedule_records_measured_costs_in_the_export(tmp_path, tiny_gpt2_dir, capsys):
    export = _write_export(tmp_path / "exp", str(tiny_gpt2_dir), 2, 4, broken="0.1")
    out = tmp_path / "r.json"
    assert cli.main(["replace", str(export), "--fraction", "0.5", "--select-sentences", "6", "--sentences", "8",
                     "--task", "builtin", "--task-items", "6", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["schedule"] == "cost" and report["selection"]["sentences"] == 6
    assert report["selection"]["fingerprint"] != report["corpus"]["fingerprint"]
    assert [s["program"] for s in report["skipped"]] == ["broken"]
    chosen = {(c["layer"], c["head"]): c for c in report["candidates"] if c["chosen"]}
    assert [(e["layer"], e["head"]) in chosen for e in report["replaced"]] == [True] * 4
    front = json.loads((export / "front.json").read_text())
    costs = {(h["layer"], h["head"], e["program"]): e.get("ppl_increase") for h in front["heads"] for e in h["front"]}
    for c in report["candidates"]:
        assert costs[(c["layer"], c["head"], c["program"])] == pytest.approx(c["cost"], abs=1e-6)
    task = report["task"]
    assert task["items"] == 6 and set(task) >= {"unmodified", "replaced", "uniform", "random"}
    assert 0 <= task["replaced"]["acc"] <= 1
    printed = capsys.readouterr().out
    assert "schedule: cost" in printed and "task builtin (6 items)" in printed
    again = tmp_path / "r2.json"
    assert cli.main(["replace", str(export), "--fraction", "0.5", "--select-sentences", "6", "--sentences", "8",
                     "--json", str(again)]) == 0
    assert "reusing" in capsys.readouterr().err
    second = json.loads(again.read_text())["candidates"]
    assert [c["program"] for c in second] == [c["program"] for c in report["candidates"]]
    assert [c["cost"] for c in second] == pytest.approx([c["cost"] for c in report["candidates"]], abs=1e-6)


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
