"""Per-head NSGA-II selection, fronts, head islands and parent choice on toy objectives."""

from __future__ import annotations

import itertools

import numpy as np

from evo.search import selection


def _brute_front(table: np.ndarray, idx) -> list[int]:
    """Returns indices not dominated by any other (objective 0 max, the rest min)."""
    signed = table * np.array([1.0] + [-1.0] * (table.shape[1] - 1))
    out = []
    for i in idx:
        dominated = any(np.all(signed[j] >= signed[i]) and np.any(signed[j] > signed[i]) for j in idx if j != i)
        if not dominated:
            out.append(int(i))
    return sorted(out)


def test_front_2d_on_a_hand_made_table():
    iou = np.array([0.2, 0.5, 0.4, 0.9, 0.9, 0.1])
    lengths = np.array([10, 20, 30, 40, 50, 5])
    ok = np.array([True, True, True, True, True, False])
    assert selection.front_2d(iou, lengths, ok) == [0, 1, 3]


def test_front_matches_brute_force_with_and_without_a_third_objective():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = 40
        iou = np.round(rng.random(n), 2)
        lengths = rng.integers(5, 30, n)
        ok = rng.random(n) > 0.1
        ppl = np.where(rng.random(n) > 0.5, rng.random(n), np.nan) if trial % 2 else None
        table = selection.objectives(iou, lengths, ppl)
        extra = np.flatnonzero(~np.isnan(ppl)) if ppl is not None else None
        pool = selection.candidates(iou, lengths, ok, pool=5, extra=extra)
        assert selection.front(table, pool) == _brute_front(table, np.flatnonzero(ok))
        if ppl is None:
            assert selection.front(table, pool) == sorted(selection.front_2d(iou, lengths, ok))


def test_nsga2_keeps_the_front_extremes_and_returns_mu_distinct():
    iou = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.85, 0.2])
    lengths = np.array([50, 40, 30, 20, 10, 60, 5])
    table = selection.objectives(iou, lengths, None)
    chosen = selection.nsga2(table, np.arange(7), 4)
    assert len(set(chosen)) == 4
    assert {0, 6} <= set(chosen)  # best IoU and shortest are boundary points
    assert 5 not in chosen  # dominated by program 0


def test_cluster_separates_heads_with_different_profiles():
    rng = np.random.default_rng(1)
    a = np.array([0.9, 0.1, 0.1]) + rng.normal(0, 0.01, (5, 3))
    b = np.array([0.1, 0.9, 0.2]) + rng.normal(0, 0.01, (5, 3))
    labels = selection.cluster(np.vstack([a, b]), 2, np.random.default_rng(0))
    assert len(set(labels[:5])) == 1 and len(set(labels[5:])) == 1 and labels[0] != labels[5]
    assert selection.cluster(np.vstack([a, b]), 5, np.random.default_rng(0)).max() < 10


def test_head_weights_prefer_poor_heads_recent_progress_and_fresh_heads():
    best = np.array([0.9, 0.3, 0.3, 0.3])
    improved_at = np.array([0, 0, 9, 0])
    since = np.array([0, 0, 0, 200])
    w = selection.head_weights(best, improved_at, since, generation=10)
    assert np.isclose(w.sum(), 1.0)
    assert w[1] > w[0]  # badly explained beats well explained
    assert w[2] > w[1]  # recently improved beats stale
    assert w[3] < w[1]  # many requests without improvement: damped


def test_tournament_with_full_size_returns_best_and_is_seeded():
    score = np.array([0.1, 0.7, 0.3, 0.7])
    assert selection.tournament([0, 1, 2, 3], score, 4, np.random.default_rng(0)) == 1  # ties: older
    picks = [selection.tournament([0, 1, 2, 3], score, 2, np.random.default_rng(s)) for s in range(30)]
    again = [selection.tournament([0, 1, 2, 3], score, 2, np.random.default_rng(s)) for s in range(30)]
    assert picks == again and 0 not in picks


def test_candidates_bound_the_pool_but_contain_the_front():
    rng = np.random.default_rng(2)
    iou, lengths = rng.random(500), rng.integers(1, 200, 500)
    ok = np.ones(500, bool)
    pool = selection.candidates(iou, lengths, ok, pool=20)
    assert len(pool) < 60
    assert set(selection.front_2d(iou, lengths, ok)) <= set(pool.tolist())
    assert set(np.argsort(-iou)[:20].tolist()) <= set(pool.tolist())
    assert list(itertools.pairwise(pool)) == [(a, b) for a, b in itertools.pairwise(sorted(pool))]


def test_partner_scores_reward_a_different_profile_at_equal_iou():
    iou = np.array([[0.8, 0.2, 0.1], [0.5, 0.2, 0.1], [0.5, 0.1, 0.9]])  # 1 is like 0, 2 is not
    score = selection.partner_scores(iou, first=0, k=0, novelty=0.3)
    assert score[2] > score[1]
    assert np.allclose(selection.partner_scores(iou, 0, 0, 0.0), iou[:, 0])


def test_costs_within_noise_do_not_dominate():
    # equal IoU and length; costs 0.010 and 0.013 with standard errors 0.002 each: within 2 sigma
    table = np.array([[0.8, 10, 0.010], [0.8, 10, 0.013], [0.8, 10, 0.050]])
    pool = np.arange(3)
    assert selection.front(table, pool) == [0]                      # without errors the cheapest wins
    se = np.array([0.002, 0.002, 0.002])
    assert selection.front(table, pool, se) == [0, 1]               # within noise both stay
    assert selection.front(table, pool, np.full(3, 0.05)) == [0, 1, 2]


def test_cascade_spreads_a_limited_budget_over_the_heads():
    from evo.search import archive as archive_mod
    from evo.search import cascade

    arch = archive_mod.Archive(n_heads=3)
    rng = np.random.default_rng(0)
    for i in range(12):
        record = archive_mod.Record(f"p{i}", f"k{i}", "src", (), "seed", 0, 5 + i, True, None, 0.0)
        arch.add(record, rng.random(3))
    everything = cascade.items(arch, margin=1.0)
    limited = cascade.items(arch, margin=1.0, limit=4)
    assert len(limited) == 4 and set(limited) <= set(everything)
    assert {k for _, k in limited} == {0, 1, 2}                  # every head gets its top pair first
    for k in range(3):
        assert max(arch.iou[i, k] for i, kk in limited if kk == k) == max(
            arch.iou[j, k] for j, kk in everything if kk == k)
