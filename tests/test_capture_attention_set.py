"""The on-disk attention set: round trip, lazy reading, and clear errors for damaged sets."""

import json
import pickle

import numpy as np
import pytest
from safetensors import safe_open

from evo import attention_set
from evo.errors import UserError


def _meta(tokens, layers=1, heads=2):
    return {"model": "m", "causal": True, "n_layers": layers, "n_heads": heads, "tokens": tokens}


def _random_set(path, lengths, heads=2, seed=0):
    rng = np.random.default_rng(seed)
    mats = [rng.dirichlet(np.ones(n), size=(heads, n)) for n in lengths]
    tokens = [[f"t{j}" for j in range(n)] for n in lengths]
    return attention_set.write(path, _meta(tokens, heads=heads), mats), mats


def test_round_trip_within_float16(tmp_path):
    aset, mats = _random_set(tmp_path / "s", [3, 5, 1])
    assert len(aset) == 3 and aset.heads == [(0, 0), (0, 1)]
    for i, m in enumerate(mats):
        got = aset.matrices(i)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, m, atol=1e-3)
    assert aset.meta["schema_version"] == attention_set.SCHEMA_VERSION


def test_file_is_plain_safetensors_with_one_f16_tensor_per_sentence(tmp_path):
    aset, mats = _random_set(tmp_path / "s", [4, 2])
    with safe_open(str(aset.path / attention_set.TENSOR_FILE), framework="numpy") as f:
        assert sorted(f.keys()) == ["s0", "s1"]
        assert f.get_tensor("s1").dtype == np.float16 and f.get_tensor("s1").shape == (2, 2, 2)


def test_writer_accepts_sentences_in_any_order(tmp_path):
    mats = [np.full((2, n, n), 1.0 / n) for n in (2, 4, 3)]
    meta = _meta([["a"] * 2, ["b"] * 4, ["c"] * 3])
    with attention_set.Writer(tmp_path / "s", meta, [2, 4, 3]) as writer:
        for i in (1, 2, 0):
            writer.add(i, mats[i])
        aset = writer.commit()
    for i in range(3):
        np.testing.assert_allclose(aset.matrices(i), mats[i], atol=1e-3)


def test_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match="expected shape"):
        with attention_set.Writer(tmp_path / "s", _meta([["a"] * 2]), [2]) as writer:
            writer.add(0, np.zeros((2, 3, 3)))
    assert list(tmp_path.iterdir()) == []


def test_commit_replaces_an_older_set(tmp_path):
    _random_set(tmp_path / "s", [3])
    aset, mats = _random_set(tmp_path / "s", [2, 2], seed=1)
    assert len(aset) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_set_survives_pickling_after_reading(tmp_path):
    aset, mats = _random_set(tmp_path / "s", [3])
    aset.matrices(0)
    again = pickle.loads(pickle.dumps(aset))
    np.testing.assert_allclose(again.matrices(0), mats[0], atol=1e-3)


def test_out_of_range_sentence_is_an_index_error(tmp_path):
    aset, _ = _random_set(tmp_path / "s", [3])
    with pytest.raises(IndexError, match="out of range"):
        aset.matrices(1)


def test_missing_set_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no attention set"):
        attention_set.AttentionSet.load(tmp_path / "nowhere")


def test_other_schema_version_is_a_user_error(tmp_path):
    aset, _ = _random_set(tmp_path / "s", [3])
    meta = json.loads((aset.path / "meta.json").read_text())
    meta["schema_version"] = 99
    (aset.path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="schema version 99"):
        attention_set.AttentionSet.load(aset.path)


def test_truncated_tensor_file_is_a_user_error(tmp_path):
    aset, _ = _random_set(tmp_path / "s", [3, 4])
    file = aset.path / attention_set.TENSOR_FILE
    file.write_bytes(file.read_bytes()[:-10])
    with pytest.raises(UserError, match="corrupt attention set"):
        attention_set.AttentionSet.load(aset.path)


def test_tokens_not_matching_tensors_is_a_user_error(tmp_path):
    aset, _ = _random_set(tmp_path / "s", [3])
    meta = json.loads((aset.path / "meta.json").read_text())
    meta["tokens"] = [["a", "b"]]
    (aset.path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="tensor s0"):
        attention_set.AttentionSet.load(aset.path)


def test_shared_fixture_has_the_documented_heads(tiny_attention_set):
    m = tiny_attention_set.matrices(0)
    assert m.shape == (4, 5, 5)
    assert m[0, 3, 2] == 1 and m[1, 4, 0] == 1 and m[2, 4, 4] == 1
    np.testing.assert_allclose(m[3, 3, :4], 0.25, atol=1e-3)


def test_derived_arrays_are_written_once_beside_the_set_and_memory_mapped(tmp_path):
    from conftest import make_tiny_attention_set
    aset = make_tiny_attention_set(tmp_path)
    calls = []

    def fill(out):
        calls.append(1)
        out[...] = np.arange(out.size, dtype=np.float32).reshape(out.shape)

    first = aset.derived("counting", (3, 4), fill)
    again = attention_set.AttentionSet.load(aset.path).derived("counting", (3, 4), fill)
    assert calls == [1] and isinstance(again, np.memmap) and not again.flags.writeable
    assert (again == first).all() and again[2, 3] == 11
    assert len(list(aset.path.glob("derived-counting-*.npy"))) == 1
    assert aset.derived("counting", (2, 2), fill).shape == (2, 2) and calls == [1, 1]   # another shape: rebuilt


def test_derived_arrays_stay_in_memory_where_the_set_is_read_only(tmp_path, monkeypatch):
    from conftest import make_tiny_attention_set

    from evo import files
    aset = make_tiny_attention_set(tmp_path)

    def refused(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(files, "locked", refused)
    got = aset.derived("ro", (2,), lambda out: out.fill(7.0))
    assert not isinstance(got, np.memmap) and (got == 7.0).all()
    assert not list(aset.path.glob("derived-ro-*"))
