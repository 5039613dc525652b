"""Every subcommand against bad input: exit 2, one line on stderr, no traceback, nothing lost."""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil

import pytest

from conftest import make_cli_run, make_tiny_attention_set
from evo import cli


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture(scope="module")
def world(tiny_gpt2_dir, tmp_path_factory):
    """Returns the names a case may use: a finished run, its export, files that are not what a flag wants."""
    tmp_path = tmp_path_factory.mktemp("world")
    tiny_attention_set = make_tiny_attention_set(tmp_path)
    cli_run = make_cli_run(tiny_attention_set.path, tmp_path / "r")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "corpus.txt").write_text("The cat sat on the mat.\nA dog ran.\n")
    typed = tmp_path / "typed"
    shutil.copytree(cli_run, typed, ignore=shutil.ignore_patterns("out"))
    state = json.loads((typed / "checkpoint.json").read_text())
    state["generation"] = "seven"
    (typed / "checkpoint.json").write_text(json.dumps(state))
    torn = tmp_path / "torn"
    shutil.copytree(cli_run, torn, ignore=shutil.ignore_patterns("out"))
    (torn / "checkpoint.json").write_text('{"schema_version": 1, "generation"')
    nolog = tmp_path / "nolog"
    shutil.copytree(cli_run, nolog, ignore=shutil.ignore_patterns("out", "log.jsonl"))
    (tmp_path / "other.json").write_text(json.dumps({"model": "gpt2", "curve": [], "baselines": {}, "replaced": []}))
    return {"RUN": str(cli_run), "EXPORT": str(cli_run / "out"), "SET": str(tiny_attention_set.path),
            "GPT2": str(tiny_gpt2_dir), "JUNK_GGUF": str(tmp_path / "junk.gguf"), "NOTES": str(tmp_path / "notes.txt"),
            "CORPUS": str(tmp_path / "corpus.txt"), "TYPED": str(typed), "TORN": str(torn), "NOLOG": str(nolog),
            "OTHER_REPLACE": str(tmp_path / "other.json"), "MISSING": str(tmp_path / "missing"),
            "NEW": str(tmp_path / "new"), "SEEDS": str(pathlib.Path(__file__).resolve().parents[1] / "seeds")}


CASES = [
    # capture
    (["capture", "--model", "JUNK_GGUF"], "is not a GGUF file"),
    (["capture", "--model", "NOTES"], "is a file but not a model"),
    (["capture", "--model", "GPT2", "--corpus", "CORPUS", "--out", "NOTES"], "not an attention set"),
    (["capture", "--model", "GPT2", "--corpus", "MISSING"], "corpus file not found"),
    (["capture", "--model", "GPT2", "--sentence-tokens", "0"], "--sentence-tokens must be at least 1"),
    # score
    (["score", "MISSING"], "no such file or directory"),
    (["score", "SEEDS", "--attention-set", "MISSING"], "no attention set at"),
    (["score", "SEEDS", "--attention-set", "SET", "--json", "MISSING/x.json"], "does not exist"),
    (["score", "SEEDS", "--model", "JUNK_GGUF"], "is not a GGUF file"),
    # search
    (["search", "--attention-set", "SET", "--run-dir", "NOTES"], "is not a directory"),
    (["search", "--attention-set", "SET", "--run-dir", "RUN"], "already holds a run"),
    (["search", "--attention-set", "SET", "--run-dir", "NEW", "--operators", "llm"], "needs an LLM"),
    (["search", "--attention-set", "SET", "--run-dir", "NEW", "--operators", "mixed",
      "--llm-base-url", "http://127.0.0.1:9/v1"], "cannot reach the LLM endpoint"),
    (["search", "--attention-set", "SET", "--run-dir", "NEW", "--max-programs", "0"], "must be positive"),
    (["search", "--attention-set", "MISSING", "--run-dir", "NEW"], "no attention set at"),
    (["search", "--model", "JUNK_GGUF", "--run-dir", "NEW"], "is not a GGUF file"),
    # resume
    (["resume", "MISSING"], "no run directory"),
    (["resume", "NOTES"], "is not a directory"),
    (["resume", "TYPED"], "generation should be int"),
    (["resume", "TORN"], "is corrupt"),
    (["resume", "NOLOG"], "log.jsonl is missing"),
    # export
    (["export", "TYPED", "--out", "NEW"], "generation should be int"),
    (["export", "RUN", "--out", "NOTES"], "is not a directory"),
    (["export", "RUN", "--out", "MISSING/deeper/out"], "does not exist"),
    (["export", "MISSING", "--out", "NEW"], "no run directory"),
    # replace
    (["replace", "EXPORT", "--plot", "MISSING/x.png"], "does not exist"),
    (["replace", "EXPORT", "--json", "MISSING/x.json"], "does not exist"),
    (["replace", "EXPORT", "--heads", ""], "--heads is empty"),
    (["replace", "EXPORT", "--heads", "9.9"], "no program for head(s) 9.9"),
    (["replace", "EXPORT", "--fraction", "2"], "--fraction must be in (0, 1]"),
    (["replace", "NOTES"], "neither an export"),
    # explain
    (["explain", "RUN", "7.7"], "no head 7.7"),
    (["explain", "RUN", "x"], "not of the form L.H"),
    (["explain", "MISSING"], "does not exist"),
    # report
    (["report", "MISSING"], "does not exist"),
    (["report", "RUN", "--out", "NOTES"], "not a directory"),
    (["report", "NOLOG"], "no run log"),
    (["report", "RUN", "--replace", "OTHER_REPLACE"], "for model 'gpt2'"),
    (["report", "RUN", "--replace", "MISSING"], "does not exist"),
]


def _digest(folder: pathlib.Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_loses_nothing(world, argv, message, capsys):
    run = pathlib.Path(world["RUN"])
    before = _digest(run)
    args = [a.replace(k, v) for a in argv for k, v in [max(((k, v) for k, v in world.items() if k in a),
                                                             key=lambda kv: len(kv[0]), default=("", ""))]]
    code = cli.main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"evo {argv[0]}: error:") and message in err, err
    assert _digest(run) == before  # the existing run and its export are untouched
