"""Caches that prove themselves: damaged attention sets and derived arrays are caught on read."""

import json
import warnings

import numpy as np
import pytest

from evo import attention_set, capture, cli, derived, integrity
from tests import conftest


def _flip_middle_bytes(aset) -> int:
    """Overwrites 16 bytes in the middle of sentence 1's tensor; returns that sentence's index."""
    header = attention_set.read_header(aset.path / attention_set.TENSOR_FILE)
    start, end = header["s1"]["data_offsets"]
    offset = 8 + int.from_bytes((aset.path / attention_set.TENSOR_FILE).read_bytes()[:8], "little")
    with open(aset.path / attention_set.TENSOR_FILE, "r+b") as f:
        f.seek(offset + (start + end) // 2)
        f.write(b"\x11" * 16)
    return 1


def test_a_new_set_carries_one_checksum_per_sentence(tiny_attention_set):
    meta = json.loads((tiny_attention_set.path / "meta.json").read_text())
    assert len(meta["checksums"]) == len(conftest.SYNTHETIC_TOKENS)
    assert attention_set.AttentionSet.load(tiny_attention_set.path, verify=True).verify() is None


def test_flipped_bytes_are_refused_with_the_command_that_captures_again(tiny_attention_set):
    bad = _flip_middle_bytes(tiny_attention_set)
    fresh = attention_set.AttentionSet.load(tiny_attention_set.path)
    fresh.matrices(0)   # an untouched sentence still reads
    with pytest.raises(integrity.CorruptCache, match=f"sentence {bad} fails its checksum") as err:
        fresh.matrices(bad)
    assert "evo capture" in str(err.value) and "--force" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(integrity.CorruptCache):
        attention_set.AttentionSet.load(tiny_attention_set.path, verify=True)


def test_score_on_a_damaged_set_exits_2_with_one_line_not_nan(tiny_attention_set, capsys):
    _flip_middle_bytes(tiny_attention_set)
    code = cli.main(["score", "seeds", "--attention-set", str(tiny_attention_set.path)])
    err = capsys.readouterr()
    assert code == 2
    assert "fails its checksum" in err.err and len(err.err.strip().splitlines()) == 1
    assert "nan" not in err.out.lower()


def test_a_set_made_before_checksums_is_still_checked_for_nan(tiny_attention_set):
    meta_path = tiny_attention_set.path / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["checksums"]
    meta_path.write_text(json.dumps(meta))
    _write_nan(tiny_attention_set)
    legacy = attention_set.AttentionSet.load(tiny_attention_set.path)
    with pytest.raises(integrity.CorruptCache, match="NaN or infinite"):
        legacy.matrices(1)


def _write_nan(aset) -> None:
    """Writes a float16 NaN over the first entry of sentence 1."""
    header = attention_set.read_header(aset.path / attention_set.TENSOR_FILE)
    offset = 8 + int.from_bytes((aset.path / attention_set.TENSOR_FILE).read_bytes()[:8], "little")
    with open(aset.path / attention_set.TENSOR_FILE, "r+b") as f:
        f.seek(offset + header["s1"]["data_offsets"][0])
        f.write(np.array([np.nan], dtype="<f2").tobytes())


def test_capture_refuses_a_model_that_gives_nan_attention(tmp_path):
    meta = {"model": "m", "causal": True, "n_layers": 1, "n_heads": 1, "tokens": [["a", "b"]], "dtype": "float16"}
    matrices = np.full((1, 2, 2), np.nan)
    with pytest.raises(attention_set.UserError, match="NaN or infinite"):
        attention_set.write(tmp_path / "s", meta, [matrices])
    assert not (tmp_path / "s").exists()


def test_a_damaged_derived_array_is_rebuilt_with_a_warning_and_the_same_values(tiny_attention_set):
    calls = []

    def fill(out):
        calls.append(1)
        out[:] = np.arange(out.size, dtype=out.dtype).reshape(out.shape)

    first = np.array(tiny_attention_set.derived("probe", (4, 5), fill))
    file = next(tiny_attention_set.path.glob("derived-probe-*.npy"))
    assert file.with_suffix(".json").is_file()
    derived._CHECKED.clear()   # as a new process would
    data = bytearray(file.read_bytes())
    data[-8:] = b"\xff" * 8
    file.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="fails its checksum"):
        again = np.array(tiny_attention_set.derived("probe", (4, 5), fill))
    assert len(calls) == 2
    np.testing.assert_array_equal(first, again)


def test_a_damaged_cached_capture_is_captured_again_with_the_same_matrices(tiny_gpt2_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADCODE_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(conftest.SENTENCES) + "\n", encoding="utf-8")
    clean = capture.ensure(str(tiny_gpt2_dir), str(corpus))
    expected = [clean.matrices(i) for i in range(len(clean))]
    _flip_middle_bytes(clean)
    with pytest.warns(UserWarning, match="cannot be trusted .*fails its checksum.*capturing it again"):
        again, reused = capture.ensure_status(str(tiny_gpt2_dir), str(corpus))
    assert not reused
    for i, m in enumerate(expected):
        np.testing.assert_array_equal(again.matrices(i), m)


def test_two_processes_building_one_derived_array_leave_one_good_entry(tiny_attention_set):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_build_probe, args=(str(tiny_attention_set.path),)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    files = list(tiny_attention_set.path.glob("derived-probe-*.npy"))
    assert len(files) == 1 and not list(tiny_attention_set.path.glob(".derived-*"))
    derived._CHECKED.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = tiny_attention_set.derived("probe", (64, 64), _fail_if_called)
    np.testing.assert_array_equal(got, np.full((64, 64), 7.0, dtype=np.float32))


def _build_probe(path: str) -> None:
    aset = attention_set.AttentionSet.load(path)
    aset.derived("probe", (64, 64), lambda out: out.fill(7.0))


def _fail_if_called(out):
    raise AssertionError("a good cached array was built again")
