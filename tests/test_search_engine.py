"""The search loop on a toy objective: budgets, de-duplication, progress, determinism, resume."""

from __future__ import annotations

import numpy as np
import pytest

from evo import search
from evo import program
from evo.search import archive, checkpoint, parents, runlog
from evo.errors import UserError
from operators import base
from evo.search import selection
from test_search_toys import SEEDS, TARGETS, ToyEvaluator, ToyOperator, engine


def _run(tmp_path, name="run", **kw):
    e = engine(tmp_path / name, **kw)
    e.seed(SEEDS)
    reason = e.run()
    return e, reason


def _fingerprint(e: search.Search):
    return ([(r.id, r.key, r.parents, r.operator, r.generation) for r in e.archive.records],
            e.archive.iou.tobytes(), e.fronts, e.rng.bit_generator.state)


def test_search_improves_on_seeds_and_stops_at_program_budget(tmp_path):
    e, reason = _run(tmp_path, budget=search.Budget(max_programs=80))
    seeds_best = e.archive.iou[:4].max(0).mean()
    assert len(e.archive) == 80
    assert reason.startswith("reached --max-programs 80")
    assert e.best.mean() > seeds_best + 0.1


def test_every_program_is_evaluated_once(tmp_path):
    evaluator = ToyEvaluator()
    e, _ = _run(tmp_path, evaluator=evaluator)
    seen = [s for call in evaluator.calls for s in call]
    keys = [e.archive.records[e.archive.by_key[program.key(s)]].key for s in seen]
    assert len(keys) == len(set(keys)) == len(e.archive)
    assert len(evaluator.calls) == e.generation + 1  # one evaluate call per generation, plus the seeds


def test_generations_budget_and_operator_exhaustion_stop_cleanly(tmp_path):
    e, reason = _run(tmp_path, name="g", budget=search.Budget(max_programs=None, generations=3))
    assert (e.generation, reason) == (3, "reached --generations 3")
    e, reason = _run(tmp_path, name="x", budget=search.Budget(max_programs=None), operator=ToyOperator(limit=20))
    assert reason == "toy limit 20 reached"


class _Repeater(ToyOperator):
    """Always returns the first parent unchanged: nothing new, ever."""

    def vary(self, requests):
        return [base.Child(r.parents[0].source, (r.parents[0].id,), "toy.same") for r in requests]


def test_operator_producing_only_duplicates_stops_the_search(tmp_path):
    evaluator = ToyEvaluator()
    e, reason = _run(tmp_path, operator=_Repeater(), evaluator=evaluator, stall_generations=4)
    assert reason == "the operators produced no new program in 4 generations"
    assert len(evaluator.calls) == 1 and len(e.archive) == len(SEEDS)


def test_failed_programs_are_kept_but_never_selected(tmp_path):
    bad = ("neg", SEEDS[0][1].replace("0.00, 0.00, 0.00", "-1.00, 0.00, 0.00"), "seed")
    e = engine(tmp_path / "r")
    e.seed(SEEDS + [bad])
    i = e.archive.by_id["neg"]
    assert not e.archive.records[i].ok and e.archive.records[i].error == "negative weight"
    assert all(i not in sel for sel in e.heads.selected)
    assert e.snapshot().errors == 1


def test_seed_failure_of_every_program_is_a_user_error(tmp_path):
    e = engine(tmp_path / "r")
    with pytest.raises(UserError, match="none of the 1 starting programs ran"):
        e.seed([("neg", SEEDS[0][1].replace("0.00, 0.00, 0.00", "-1.00, 0.00, 0.00"), "seed")])


def test_same_seed_same_result_different_seed_different_result(tmp_path):
    a, _ = _run(tmp_path, name="a", seed=5)
    b, _ = _run(tmp_path, name="b", seed=5)
    c, _ = _run(tmp_path, name="c", seed=6)
    assert _fingerprint(a) == _fingerprint(b)
    assert _fingerprint(a)[0] != _fingerprint(c)[0]


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    full, _ = _run(tmp_path, name="full", budget=search.Budget(max_programs=70))
    part, _ = _run(tmp_path, name="part", budget=search.Budget(max_programs=70, generations=3))
    resumed = engine(tmp_path / "part", budget=search.Budget(max_programs=70))
    resumed.load_state(checkpoint.load(tmp_path / "part"))
    assert resumed.operator.calls == part.operator.calls
    resumed.run()
    assert _fingerprint(resumed) == _fingerprint(full)
    logs = [[(x["id"], x["key"], x["iou_f16"]) for x in runlog.read(tmp_path / name / "log.jsonl")]
            for name in ("part", "full")]
    assert logs[0] == logs[1]


def test_interrupt_drops_the_generation_in_flight_and_resumes_exactly(tmp_path):
    full, _ = _run(tmp_path, name="full", budget=search.Budget(max_programs=70))
    e = engine(tmp_path / "cut", budget=search.Budget(max_programs=70))
    e.seed(SEEDS)
    polls = []

    def stop():  # the signal arrives during the fourth generation's evaluation
        polls.append(1)
        return len(polls) >= 8

    assert e.run(stop) == search.INTERRUPTED
    saved = checkpoint.load(tmp_path / "cut")
    assert saved["generation"] == 3 and saved["spent"]["programs"] < len(e.archive) + 1
    resumed = engine(tmp_path / "cut", budget=search.Budget(max_programs=70))
    resumed.load_state(saved)
    resumed.run()
    assert _fingerprint(resumed) == _fingerprint(full)


def test_resume_drops_log_lines_written_after_the_checkpoint(tmp_path):
    e, _ = _run(tmp_path, budget=search.Budget(max_programs=30))
    log = tmp_path / "run" / "log.jsonl"
    before = log.read_bytes()
    with open(log, "a") as f:
        f.write('{"id": "p999999", "half": ')
    engine(tmp_path / "run").load_state(checkpoint.load(tmp_path / "run"))
    assert log.read_bytes() == before
    entries = runlog.read(log)
    assert [x["id"] for x in entries] == [r.id for r in e.archive.records]
    ok = [x for x in entries if x["ok"]]
    assert np.allclose(np.stack([x["iou"] for x in ok]).astype(np.float32),
                       e.archive.iou[e.archive.ok], atol=1e-3)


def test_requests_target_badly_explained_heads_more_often(tmp_path):
    e = engine(tmp_path / "r")
    e.seed(SEEDS)
    targets = [r.heads[0] for _ in range(20) for r in parents.requests(8, e)]
    counts = np.bincount(targets, minlength=len(TARGETS))
    assert counts[np.argmin(e.best)] > counts[np.argmax(e.best)]


def test_requests_count_the_programs_made_for_their_head_before(tmp_path):
    e, _ = _run(tmp_path, budget=search.Budget(max_programs=30))
    made = np.bincount([r.target[0] for r in e.archive.records if r.target], minlength=len(TARGETS))
    asked = parents.requests(12, e)
    for i, r in enumerate(asked):
        earlier = sum(q.heads[0] == r.heads[0] for q in asked[:i])
        assert r.visits == made[r.heads[0]] + earlier


def test_progress_snapshot_reports_budget_and_mean_best(tmp_path):
    e, _ = _run(tmp_path, budget=search.Budget(max_programs=40))
    snap = e.snapshot()
    assert (snap.evaluated, snap.budget, snap.n_heads) == (40, 40, len(TARGETS))
    assert snap.mean_best == pytest.approx(float(e.best.mean()))
    assert snap.operator == {"calls": e.operator.calls}


def test_records_and_log_name_the_head_each_child_was_bred_for(tmp_path):
    e, _ = _run(tmp_path, budget=search.Budget(max_programs=30))
    bred = [r for r in e.archive.records if r.generation > 0]
    assert bred and all(len(r.target) == 1 and 0 <= r.target[0] < len(TARGETS) for r in bred)
    logged = {x["id"]: tuple(x["target"]) for x in runlog.read(tmp_path / "run" / "log.jsonl")}
    assert all(logged[r.id] == r.target for r in e.archive.records)


def _brute_front(table, idx):
    signed = table * np.array([1.0] + [-1.0] * (table.shape[1] - 1))
    return [int(i) for i in idx if not any(np.all(signed[j] >= signed[i]) and np.any(signed[j] > signed[i])
                                           for j in idx if j != i)]


class _ToyCost:
    """Downstream cost = weight on the first pattern; records what it was asked."""

    def __init__(self):
        self.asked: list[tuple[str, int]] = []

    def costs(self, items):
        from test_search_toys import weights

        self.asked += [(pid, k) for pid, _, k in items]
        return [None if "PAD1" in src else float(weights(src)[0]) for _, src, k in items]


def test_downstream_cost_is_measured_once_near_fronts_and_becomes_an_objective(tmp_path):
    cost = _ToyCost()
    e = engine(tmp_path / "run", budget=search.Budget(max_programs=50), cascade_pairs=10_000)
    e.downstream = cost
    e.seed(SEEDS)
    e.run()
    assert len(cost.asked) == len(set(cost.asked)) > 0
    assert len(cost.asked) < len(e.archive) * len(TARGETS) / 2  # a cascade, not everything
    for k in range(len(TARGETS)):
        best = int(np.argmax(e.archive.iou[:, k]))
        assert (best, k) in e.archive.ppl
        table = selection.objectives(e.archive.iou[:, k], e.archive.lengths, e.archive.ppl_column(k))
        assert e.fronts[k] == _brute_front(table, np.flatnonzero(e.archive.ok))
    assert all(len(e.heads.selected[k]) > 0 for k in range(len(TARGETS)))
    state = e.state()
    assert state["archive"]["ppl"] and archive.Archive.from_state(state["archive"]).ppl == e.archive.ppl


def test_downstream_measurements_per_generation_are_capped(tmp_path):
    class Counting(_ToyCost):
        def __init__(self):
            super().__init__()
            self.calls = []

        def costs(self, items):
            self.calls.append(len(items))
            return super().costs(items)

    cost = Counting()
    e = engine(tmp_path / "run", budget=search.Budget(max_programs=50), cascade_pairs=2)
    e.downstream = cost
    e.seed(SEEDS)
    e.run()
    assert cost.calls and max(cost.calls) <= 2


class _SlowCost(_ToyCost):
    """A downstream cost that takes a seeded random time and records the thread it ran on."""

    def __init__(self, seed):
        super().__init__()
        self.rng, self.threads = np.random.default_rng(seed), []

    def costs(self, items):
        import threading
        import time

        self.threads.append(threading.current_thread().name)
        time.sleep(float(self.rng.uniform(0, 0.02)))
        return super().costs(items)


def test_downstream_cascade_runs_beside_the_next_generation_and_timing_changes_nothing(tmp_path):
    runs = []
    for seed in (1, 2):
        cost = _SlowCost(seed)
        e = engine(tmp_path / f"run{seed}", budget=search.Budget(max_programs=50))
        e.downstream = cost
        e.seed(SEEDS)
        e.run()
        assert "headcode-downstream" in cost.threads  # measured in the background, not in the loop
        saved = archive.Archive.from_state(checkpoint.load(tmp_path / f"run{seed}")["archive"])
        assert saved.ppl == e.archive.ppl  # the last checkpoint holds every cost measured
        runs.append((_fingerprint(e), e.archive.ppl, cost.asked))
    assert runs[0] == runs[1]


def test_progress_prints_plain_lines_without_a_terminal_and_a_panel_with_one():
    import io

    from evo.search import progress

    snap = progress.Snapshot(generation=3, evaluated=120, budget=500, mean_best=0.6789, heads_above=9,
                             n_heads=72, errors=2, elapsed=75.0, eta=240.0, operator={"calls": 7})
    plain = io.StringIO()
    with progress.Reporter(plain) as reporter:
        reporter.update(snap)
        reporter.message("stopped: reached --max-programs 500")
    text = plain.getvalue()
    assert "gen 3 programs 120/500 mean-best-iou 0.6789 heads>=0.8 9/72 errors 2" in text
    assert "elapsed 0:01:15 eta 0:04:00 calls=7" in text and "stopped: reached" in text
    live = io.StringIO()
    with progress.Reporter(live, live=True) as reporter:
        reporter.update(snap)
    assert "mean best-fit IoU" in live.getvalue() and "0.6789" in live.getvalue()
