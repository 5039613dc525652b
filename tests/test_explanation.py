"""Shares, families, accounts and attribution (evo.explanation), on synthetic heads."""

import json

import numpy as np
import pytest

from evo.explanation import accounts, attribution, families, patterns, shares

TOKENS = ["<bos>", "The", " cat", " sat", ",", " the", " cat", " ran", "."]


def _text(tokens=TOKENS):
    return shares.Text.of([tokens], True, False, "test sentence")


def _rows(n, where):
    """Returns (n, n) causal rows with all of row i's mass on key where(i)."""
    m = np.zeros((n, n))
    for i in range(n):
        m[i, where(i)] = 1.0
    return m


def _head(kind: str, n: int = len(TOKENS)) -> np.ndarray:
    first = _rows(n, lambda i: 0)
    if kind == "sink":
        return first
    if kind == "previous":
        return 0.2 * first + 0.8 * _rows(n, lambda i: max(i - 1, 0))
    if kind == "self":
        return 0.3 * first + 0.7 * np.eye(n)
    if kind == "local":
        near = np.tril(np.ones((n, n))) - np.tril(np.ones((n, n)), -4)
        return 0.3 * first + 0.7 * near / near.sum(axis=1, keepdims=True)
    if kind == "delimiter":
        punct = np.array([t in (",", ".") for t in TOKENS], dtype=float)
        m = np.tril(np.ones((n, n))) * punct[None, :]
        rows = m.sum(axis=1, keepdims=True)
        return np.where(rows > 0, 0.3 * first + 0.7 * m / np.maximum(rows, 1), first)
    if kind == "uniform":
        m = np.tril(np.ones((n, n)))
        return m / m.sum(axis=1, keepdims=True)
    raise ValueError(kind)


def test_patterns_partition_the_visible_cells_in_order():
    masks = patterns.masks(TOKENS, True, False)
    total = sum(m.astype(int) for m in masks)
    assert (total == np.tril(np.ones((len(TOKENS),) * 2))).all()      # every visible cell once, none hidden
    labels = patterns.labels(TOKENS, True, False)
    assert labels[6, 2] == patterns.NAMES.index("duplicate") and labels[6, 3] == patterns.NAMES.index("induction")
    assert labels[3, 2] == patterns.NAMES.index("previous") and labels[5, 4] == patterns.NAMES.index("previous")
    assert labels[8, 4] == patterns.NAMES.index("delimiter") and labels[8, 0] == patterns.NAMES.index("first")


def test_shares_add_up_and_match_a_direct_count():
    head = _head("previous")
    got = shares.of(_text(), [head[None]])[0]
    assert got.sum() == pytest.approx(1.0)
    n = len(TOKENS)
    direct_prev = np.mean([head[i, i - 1] if i >= 1 and i - 1 != 0 else 0.0 for i in range(n)])
    direct_first = np.mean(head[:, 0])
    assert got[patterns.NAMES.index("previous")] == pytest.approx(direct_prev)
    assert got[patterns.NAMES.index("first")] == pytest.approx(direct_first)


@pytest.mark.parametrize("kind, family", [
    ("sink", "sink"), ("previous", "previous-token"), ("self", "self"), ("local", "local"),
    ("delimiter", "delimiter")])
def test_synthetic_heads_of_each_family_are_named_so(kind, family):
    got = shares.of(_text(), [_head(kind)[None]])[0]
    assert families.family(got) == family


def test_a_head_spread_evenly_over_a_long_sentence_is_mixed():
    tokens = ["<bos>"] + [f" w{i}" for i in range(40)]
    got = shares.of(_text(tokens), [_head("uniform", len(tokens))[None]])[0]
    assert families.family(got) == "mixed"


def test_a_head_selective_for_a_word_class_is_part_of_speech():
    n = len(patterns.NAMES)
    spread = np.zeros(n)
    spread[patterns.NAMES.index("first")], spread[patterns.NAMES.index("rest")] = 0.4, 0.6
    classes = np.zeros(len(shares.CLASSES))
    even = np.full(len(shares.CLASSES), 1 / len(shares.CLASSES))
    classes[0] = 0.7                                  # 70 % of the rest on nouns, 9 % for an even spread
    assert families.family(spread, (classes, even)) == "part-of-speech"
    assert families.family(spread, (even, even)) == "mixed"


def test_an_account_names_at_most_three_shares_then_the_rest_without_weights():
    head = shares.of(_text(), [_head("previous")[None]])[0]
    program = shares.of(_text(), [_head("local")[None]])[0]
    words = accounts.words(head, program)
    # row 1's previous token is the first token, which the first pattern claims
    assert words.startswith("38 % on the first token (program 46 %); 62 % on the previous token (program 14 %)")
    assert words.count(" %") == 2 * 3    # two named shares and the rest, each with the program's beside it
    record = accounts.records(head, program, "t")
    assert json.dumps(record) and record["patterns"][-1]["pattern"] == "rest" and len(record["patterns"]) <= 4
    assert sum(r["head"] for r in record["patterns"]) == pytest.approx(1.0, abs=1e-3)
    assert "more terms" not in words and "+" not in words


def test_attribution_drops_each_family_of_terms_by_zeroing_its_weights():
    source = ("def attention(tokens):\n    scores = 3.0 * sink(tokens)\n    scores += 1.2 * previous_token(tokens)\n"
              "    scores += query_is(tokens, 'NOUN') * (0.8 * key_is(tokens, 'DET') + 0.5 * decay(tokens))\n"
              "    return softmax_rows(scores)\n")
    found = attribution.variants(source)
    assert set(found) == {"first token", "position", "part of speech"}
    assert "0.0 * sink(tokens)" in found["first token"] and "1.2 * previous_token" in found["first token"]
    assert "0.0 * previous_token(tokens)" in found["position"] and "0.0 * decay(tokens)" in found["position"]
    assert "0.0 * (query_is(tokens, 'NOUN')" in found["part of speech"]
    assert attribution.words({"position": 0.12, "first token": 0.3, "syntax": 0.01, "copies of tokens": 0.0}) == \
        "IoU lost without its terms for first token: 30.0 points; position: 12.0 points; syntax: 1.0 points"


def _affinity_text(favoured_key):
    """Returns a text whose single head's affinity ranks key favoured_key(i) first for every query i >= 1."""
    n = len(TOKENS)
    aff = np.zeros((1, n, n))
    for i in range(1, n):
        aff[0, i, favoured_key(i)] = 5.0
    aff[0, :, 0] = 9.0                       # the first token is never the favoured key, however high its affinity
    return shares.Text.of([TOKENS], True, False, "test sentence", [aff])


def test_content_share_is_the_mass_off_the_first_token_on_the_key_the_affinity_ranks_first():
    text = _affinity_text(lambda i: max(i - 2, 1))
    n = len(TOKENS)
    follows = 0.4 * _rows(n, lambda i: 0) + 0.6 * _rows(n, lambda i: max(i - 2, 1) if i else 0)
    own, _ = shares.content(text, [follows[None]])
    assert own[0] == pytest.approx(1.0)                        # all its mass off the first token is on that key
    uniform = _head("uniform")
    own_u, even_u = shares.content(text, [uniform[None]])
    assert own_u[0] == pytest.approx(even_u[0])                # spread evenly: no more than chance
    # the even spread by hand: each row's mass off the first token, a 1/i part of it on the favoured key
    off = [uniform[i, 1:i + 1].sum() for i in range(1, n)]
    assert even_u[0] == pytest.approx(sum(o / i for o, i in zip(off, range(1, n))) / sum(off))
    assert shares.content(_text(), [follows[None]]) is None    # a text without affinities measures none


def test_a_head_that_goes_where_its_affinity_points_is_content_and_its_account_says_so():
    text = _affinity_text(lambda i: 1)      # key 1 for every query
    n = len(TOKENS)
    head = 0.5 * _rows(n, lambda i: 0) + 0.5 * _rows(n, lambda i: 1 if i else 0)
    head_shares = shares.of(text, [head[None]])[0]
    own, even = shares.content(text, [head[None]])
    assert families.family(head_shares) != "content"                        # not measured: never named so
    spread = np.zeros(len(patterns.NAMES))
    spread[patterns.NAMES.index("first")], spread[patterns.NAMES.index("rest")] = 0.5, 0.5
    assert families.family(spread, None, (float(own[0]), float(even[0]))) == "content"
    assert families.family(spread, None, (0.25, 0.05)) == "mixed"          # below CONTENT_SHARE
    assert families.family(spread, None, (0.5, 0.3)) == "mixed"            # under twice the even spread
    words = accounts.words(spread, None, None, (0.47, 0.4, 0.11))
    assert words.endswith("off the first token, 47 % on the key the tokens alone favour most "
                          "(program 40 %; even spread: 11 %)")
    assert "favour" not in accounts.words(spread, None, None, (0.2, 0.4, 0.11))
    record = accounts.records(spread, None, "t", (0.47, None, 0.11))
    assert record["content"] == {"head": 0.47, "program": None, "even": 0.11}
    assert "content" not in accounts.records(spread, None, "t")


def test_every_family_has_its_own_colour_on_the_report():
    from evo.report import page

    assert set(families.NAMES) <= set(page.FAMILY_COLOURS)
    assert len(set(page.FAMILY_COLOURS.values())) == len(page.FAMILY_COLOURS)


def test_the_summary_line_names_the_favoured_key_share_only_where_the_head_follows_content():
    import types

    from evo import explain

    patterns = [{"pattern": "first", "head": 0.3, "program": 0.32}, {"pattern": "rest", "head": 0.7, "program": 0.68}]
    told = types.SimpleNamespace(shares={"patterns": patterns,
                                         "content": {"head": 0.47, "program": 0.54, "even": 0.11}})
    assert explain.compact(told) == "first 30 (32) · rest 70 (68) · favoured 47 (54)"
    told.shares["content"] = {"head": 0.2, "program": 0.25, "even": 0.11}   # below the share a family needs
    assert explain.compact(told) == "first 30 (32) · rest 70 (68)"
    del told.shares["content"]   # an export made before content shares
    assert explain.compact(told) == "first 30 (32) · rest 70 (68)"
