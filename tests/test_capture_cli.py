"""`evo capture` and `capture.ensure`: caching, reuse, and one-line errors for input mistakes."""

import pytest

from evo import capture, cli, models
from tests import conftest


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADCODE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("\n".join(conftest.SENTENCES) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def load_calls(monkeypatch):
    """Returns a list that records every real models.load call."""
    calls, real = [], models.load

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(models, "load", counting)
    return calls


def test_capture_prints_location_and_summary(tiny_gpt2_dir, corpus_file, tmp_path, capsys, cache):
    out = tmp_path / "set"
    code = cli.main(["capture", "--model", str(tiny_gpt2_dir), "--corpus", str(corpus_file), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"attention set: {out}" in printed
    assert "2 layers x 4 heads = 8 heads, causal" in printed
    assert "sentences: 6" in printed and "tokens/s" in printed
    assert (out / "meta.json").is_file()


def test_second_identical_capture_reuses_the_set(tiny_gpt2_dir, corpus_file, capsys, cache, load_calls):
    argv = ["capture", "--model", str(tiny_gpt2_dir), "--corpus", str(corpus_file)]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    assert cli.main(argv) == 0
    second = capsys.readouterr().out
    assert "reused the stored set" in second and "reused" not in first
    assert len(load_calls) == 1
    assert first.splitlines()[0] == second.splitlines()[0]
    assert first.splitlines()[0].startswith(f"attention set: {cache / 'attention'}")


def test_changed_settings_capture_again(tiny_gpt2_dir, corpus_file, cache, load_calls):
    a = capture.ensure(str(tiny_gpt2_dir), str(corpus_file), max_tokens=64)
    b = capture.ensure(str(tiny_gpt2_dir), str(corpus_file), max_tokens=8)
    assert a.path != b.path and len(load_calls) == 2
    assert max(len(t) for t in b.tokens) == 8


def test_force_captures_again(tiny_gpt2_dir, corpus_file, cache, load_calls):
    capture.ensure_status(str(tiny_gpt2_dir), str(corpus_file))
    aset, reused = capture.ensure_status(str(tiny_gpt2_dir), str(corpus_file), force=True)
    assert not reused and len(load_calls) == 2 and len(aset) == 6


def test_unreadable_cached_set_is_captured_again(tiny_gpt2_dir, corpus_file, cache):
    aset = capture.ensure(str(tiny_gpt2_dir), str(corpus_file))
    (aset.path / "attention.safetensors").write_bytes(b"garbage")
    again, reused = capture.ensure_status(str(tiny_gpt2_dir), str(corpus_file))
    assert not reused and again.path == aset.path and again.matrices(0).shape[0] == 8


def test_out_dir_that_is_not_a_set_is_refused(tiny_gpt2_dir, corpus_file, tmp_path, capsys, cache):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    code = cli.main(["capture", "--model", str(tiny_gpt2_dir), "--corpus", str(corpus_file), "--out", str(precious)])
    assert code == 2 and "is not an attention set" in capsys.readouterr().err
    assert (precious / "notes.txt").read_text() == "keep me"


def test_truncation_warning_is_printed_and_kept(tiny_gpt2_dir, corpus_file, capsys, cache):
    argv = ["capture", "--model", str(tiny_gpt2_dir), "--corpus", str(corpus_file), "--max-tokens", "6"]
    assert cli.main(argv) == 0
    assert "longer than --sentence-tokens 6 and were truncated" in capsys.readouterr().err
    assert cli.main(argv) == 0
    assert "were truncated" in capsys.readouterr().err  # the reused set still says so


@pytest.mark.parametrize("extra,message", [
    (["--model", "no-such-model-preset"], "unknown model 'no-such-model-preset'"),
    (["--corpus", "MISSING"], "MISSING"),
    (["--corpus", "EMPTY"], "EMPTY"),
    (["--sentence-tokens", "0"], "--sentence-tokens must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
])
def test_input_mistakes_are_one_line_errors(extra, message, tiny_gpt2_dir, corpus_file, tmp_path, capsys,
                                            cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    names = {"MISSING": str(tmp_path / "missing.txt"), "EMPTY": str(empty)}
    extra = [names.get(x, x) for x in extra]
    message = names.get(message, message)
    argv = ["capture", "--model", str(tiny_gpt2_dir), "--corpus", str(corpus_file)] + extra
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("evo capture: error:") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_capture_with_encoder(tiny_bert_dir, corpus_file, capsys, cache):
    assert cli.main(["capture", "--model", str(tiny_bert_dir), "--corpus", str(corpus_file)]) == 0
    assert "bidirectional" in capsys.readouterr().out
