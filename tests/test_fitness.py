"""Tests for output normalisation and the row-wise soft IoU (synthetic data, no model)."""

import numpy as np
import pytest

from evo import fitness


def _random_heads(rng, n_heads, lengths, causal, sharpness=4.0):
    """Returns one row-stochastic (K, n, n) float32 array per sentence."""
    out = []
    for n in lengths:
        a = rng.random((n_heads, n, n)) ** sharpness
        if causal:
            a = np.tril(a)
        out.append((a / a.sum(-1, keepdims=True)).astype(np.float32))
    return out


def _naive_iou(heads, outputs):
    """Returns (K,) IoU by a plain loop over heads, sentences and rows."""
    k_total = heads[0].shape[0]
    scores = np.zeros(k_total)
    for k in range(k_total):
        per_sentence = []
        for a, p in zip(heads, outputs):
            rows = []
            for i in range(a.shape[1]):
                den = np.maximum(a[k, i], p[i]).sum()
                rows.append(np.minimum(a[k, i], p[i]).sum() / den if den > 0 else 0.0)
            per_sentence.append(np.mean(rows))
        scores[k] = np.mean(per_sentence)
    return scores


# --- normalise -------------------------------------------------------------------------

def test_normalise_renormalises_rows_and_applies_causal_mask():
    raw = np.ones((3, 3))
    out = fitness.normalise(raw, 3, causal=True)
    np.testing.assert_allclose(out, [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]])


def test_normalise_keeps_upper_triangle_for_bidirectional_models():
    out = fitness.normalise(np.array([[0, 2.0], [1, 3]]), 2, causal=False)
    np.testing.assert_allclose(out, [[0, 1], [0.25, 0.75]])


def test_normalise_leaves_empty_row_all_zero():
    raw = np.array([[0.0, 5.0], [0.0, 0.0]])
    out = fitness.normalise(raw, 2, causal=True)   # row 0 loses its only mass to the mask
    np.testing.assert_array_equal(out, np.zeros((2, 2)))


@pytest.mark.parametrize("raw, message", [
    (np.ones((5, 2)), r"wrong shape \(5, 2\) for 2 tokens"),
    (np.ones(2), r"wrong shape \(2,\) for 2 tokens"),
    (np.array([[1.0, 0], [0, np.nan]]), "NaN at row 1"),
    (np.array([[1.0, 0], [np.inf, 1]]), "infinite value at row 1"),
    (np.array([[1.0, 0], [-0.5, 1]]), r"negative entry at \(1, 0\)"),
])
def test_normalise_rejects_malformed_output_with_exact_reason(raw, message):
    with pytest.raises(ValueError, match=message):
        fitness.normalise(raw, 2, causal=True)


def test_normalise_rejects_nan_even_where_the_causal_mask_would_hide_it():
    with pytest.raises(ValueError, match="NaN at row 0"):
        fitness.normalise(np.array([[1.0, np.nan], [1, 1]]), 2, causal=True)


def test_normalise_rejects_non_numeric_output():
    with pytest.raises(ValueError, match="not numeric"):
        fitness.normalise(np.array([["a", "b"], ["c", "d"]]), 2, causal=False)


def test_normalise_rejects_rows_whose_sum_overflows():
    raw = np.array([[1e308, 1e308], [1.0, 1.0]])
    with pytest.raises(ValueError, match="row 0 sums to infinity"):
        fitness.normalise(raw, 2, causal=False)


def test_normalise_accepts_boolean_and_integer_output():
    out = fitness.normalise(np.array([[True, False], [True, True]]), 2, causal=True)
    np.testing.assert_allclose(out, [[1, 0], [0.5, 0.5]])


# --- iou_rows --------------------------------------------------------------------------

def test_iou_rows_hand_computed_case():
    a = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])
    p = np.array([[1.0, 0, 0], [1.0, 0.0, 0], [0.0, 0.5, 0.5]])
    # row 0: identical -> 1; row 1: min 0.5 / max 1.5; row 2: min 0.8 / max 1.2
    np.testing.assert_allclose(fitness.iou_rows(a, p), [1.0, 1 / 3, 2 / 3])


def test_iou_rows_is_symmetric_and_bounded(rng=np.random.default_rng(1)):
    a, p = rng.random((2, 6, 6))
    forward, backward = fitness.iou_rows(a, p), fitness.iou_rows(p, a)
    np.testing.assert_allclose(forward, backward)
    assert np.all((forward >= 0) & (forward <= 1))


def test_iou_rows_disjoint_support_scores_zero_and_empty_rows_score_zero():
    a = np.array([[1.0, 0], [0.0, 0.0]])
    p = np.array([[0.0, 1], [0.0, 0.0]])
    np.testing.assert_array_equal(fitness.iou_rows(a, p), [0.0, 0.0])


# --- packed, all heads at once ---------------------------------------------------------

@pytest.mark.parametrize("causal", [True, False])
def test_vectorised_iou_equals_naive_loop_on_random_data(causal):
    rng = np.random.default_rng(7)
    lengths = [1, 5, 9, 3, 12]
    heads = _random_heads(rng, 6, lengths, causal)
    outputs = [fitness.normalise(rng.random((n, n)) ** 3, n, causal) for n in lengths]
    targets = fitness.Targets.from_matrices(heads, causal)
    got = fitness.iou(targets, outputs)
    assert got.shape == (6,) and got.dtype == np.float32
    np.testing.assert_allclose(got, _naive_iou(heads, outputs), atol=1e-5)


def test_identical_matrices_score_one_against_their_own_head():
    rng = np.random.default_rng(3)
    heads = _random_heads(rng, 4, [4, 7, 2], causal=True)
    targets = fitness.Targets.from_matrices(heads, causal=True)
    scores = fitness.iou(targets, [h[2].astype(np.float64) for h in heads])
    assert scores[2] == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.delete(scores, 2) < 0.99)


def test_per_sentence_scores_locate_the_sentence_that_fails():
    eye = [np.eye(n)[None] for n in (3, 4, 5)]
    targets = fitness.Targets.from_matrices(eye, causal=True)
    outputs = [np.eye(3), np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None], np.eye(5)]
    per = fitness.iou_per_sentence(targets, outputs)
    assert per.shape == (1, 3)
    # row i spreads 1/(i+1) over i+1 tokens: min 1/(i+1), max 1 + i/(i+1) -> 1/(2i+1)
    np.testing.assert_allclose(per[0], [1.0, np.mean(1 / (2 * np.arange(4) + 1)), 1.0], atol=1e-6)


def test_program_rows_left_empty_score_zero_in_packed_scoring():
    targets = fitness.Targets.from_matrices([np.eye(3)[None]], causal=True)
    out = np.eye(3)
    out[1] = 0.0
    np.testing.assert_allclose(fitness.iou(targets, [out]), [2 / 3], atol=1e-6)


def test_chunked_scoring_matches_one_pass(monkeypatch):
    rng = np.random.default_rng(11)
    heads = _random_heads(rng, 9, [6, 8], causal=False)
    outputs = [fitness.normalise(rng.random((n, n)), n, False) for n in (6, 8)]
    targets = fitness.Targets.from_matrices(heads, causal=False)
    whole = fitness.iou(targets, outputs)
    monkeypatch.setattr(fitness, "CHUNK_BYTES", 1)   # one head per chunk
    np.testing.assert_allclose(fitness.iou(targets, outputs), whole, atol=1e-7)


def test_pack_rejects_wrong_sentence_count_and_shape():
    targets = fitness.Targets.from_matrices([np.eye(3)[None], np.eye(2)[None]], causal=True)
    with pytest.raises(ValueError, match="1 matrices for 2 sentences"):
        targets.pack([np.eye(3)])
    with pytest.raises(ValueError, match=r"wrong shape \(3, 3\) for 2 tokens on sentence 1"):
        targets.pack([np.eye(3), np.eye(3)])


def test_targets_from_set_reads_every_sentence_and_keeps_head_names(tmp_path):
    from evo import attention_set

    rng = np.random.default_rng(5)
    mats = _random_heads(rng, 4, [3, 6, 2], causal=True)
    tokens = [["t"] * m.shape[-1] for m in mats]
    meta = {"model": "random", "causal": True, "n_layers": 2, "n_heads": 2, "tokens": tokens}
    aset = attention_set.write(tmp_path / "set", meta, mats)
    from_set = fitness.Targets.from_set(aset)
    direct = fitness.Targets.from_matrices(mats, causal=True)
    np.testing.assert_allclose(from_set.packed, direct.packed, atol=1e-3)   # stored as float16
    assert from_set.heads == [(0, 0), (0, 1), (1, 0), (1, 1)]
    subset = fitness.Targets.from_set(aset, sentences=[2, 0])
    assert subset.layout.lengths == (2, 3)
