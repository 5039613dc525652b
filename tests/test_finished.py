"""Programs are finished when made: canonical source, its length and its account in the archive, so that
selection, export and the report agree; old runs are brought up to date by one migration step."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from evo import files, program
from evo.search import checkpoint, export, migrate
from operators import base, finish
from operators.shared import account, canonical
from test_canonical import MESSY  # what the search used to write



class Writes(base.Operator):
    """An operator that writes the given texts, one per request, as they are."""

    name = "writes"

    def __init__(self, texts):
        self.texts = list(texts)
        self.settings = "inner settings"

    def vary(self, requests):
        return [base.Child(source=t, parents=("p",), operator="writes.edit") for t, _ in zip(self.texts, requests)]


def _requests(n):
    parent = base.Parent("p", MESSY, np.zeros(2), 10)
    return [base.Request("mutate", (parent,), (0,), seed=i) for i in range(n)]


def test_children_come_out_in_canonical_form_with_their_account():
    op = finish.Finished(Writes([MESSY, None, "def attention(tokens:\n    return (", "x = 1\n" * 3]), causal=True)
    tidy, failed, broken, other = op.vary(_requests(4))
    assert tidy.source == canonical.tidy(MESSY, True) != MESSY
    assert canonical.tidy(tidy.source, True) == tidy.source  # finishing is idempotent
    assert program.length(tidy.source) < program.length(MESSY)
    assert tidy.meta["account"] == account.of_program(tidy.source, "writes.edit", True)
    assert "first token" in tidy.meta["account"]
    assert failed.source is None
    assert broken.source.startswith("def attention(tokens:") and broken.meta["account"] == finish.UNREAD
    assert other.source and other.meta["account"]
    assert op.settings == "inner settings" and op.name == "writes"  # the rest is the wrapped operator's


def test_a_run_stores_finished_programs_and_export_needs_nothing_from_operators(cli_run, tmp_path):
    state = checkpoint.load(cli_run)
    assert state["archive"][migrate.FINISHED]
    ran = [r for r in state["archive"]["records"] if r["ok"]]
    assert ran
    for r in ran:
        assert canonical.tidy(r["source"], True) == r["source"]
        assert program.length(r["source"]) == r["length"] and program.key(r["source"]) == r["key"]
        assert r["account"]
    code = ("import sys; from evo.search import export; export.export(sys.argv[1], sys.argv[2]); "
            "print(sorted(m for m in sys.modules if m == 'operators' or m.startswith('operators.')))")
    out = subprocess.run([sys.executable, "-c", code, str(cli_run), str(tmp_path / "out")], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    doc = json.loads((tmp_path / "out" / "front.json").read_text())
    lengths = {r["id"]: r["length"] for r in ran}
    for h in doc["heads"]:
        for entry in h["front"]:
            assert entry["length"] == lengths[entry["program"]]  # the length selection used is the one shown
            text = (tmp_path / "out" / "programs" / f"{entry['program']}.py").read_text()
            assert program.length(text) == entry["length"]


def _unfinished(run_dir):
    """Rewrites a run's checkpoint as headcode wrote it before programs were finished when made:
    each program as an operator wrote it (here: prelude names used without their import, as the AST edits
    used to leave them), its length, no account, no mark."""
    path = run_dir / "checkpoint.json"
    state = json.loads(path.read_text())
    for r in state["archive"]["records"]:
        if r["ok"]:
            r["source"] = "".join(line for line in r["source"].splitlines(keepends=True)
                                  if not line.startswith("from evo.prelude import"))
            r["length"], r["key"] = program.length(r["source"]), program.key(r["source"])
        r.pop("account", None)
    del state["archive"][migrate.FINISHED]
    files.write_json(path, state)
    return state


def test_migration_brings_an_old_run_to_the_finished_form(cli_run, tmp_path):
    finished = checkpoint.load(cli_run)
    export.export(cli_run, tmp_path / "new")
    old = _unfinished(cli_run)
    assert migrate.needed(old) and not migrate.needed(finished)
    assert sum(a["source"] != b["source"] for a, b in zip(old["archive"]["records"], finished["archive"]["records"])) > 10
    migrated = checkpoint.load(cli_run)
    assert migrated["archive"] == finished["archive"]  # sources, lengths, keys, accounts and scores
    assert migrated["fronts"] == finished["fronts"] and migrated["population"] == finished["population"]
    export.export(cli_run, tmp_path / "old")
    assert (tmp_path / "old" / "front.json").read_text() == (tmp_path / "new" / "front.json").read_text()


def test_migration_keeps_programs_that_became_the_same_text_apart(cli_run):
    state = _unfinished(cli_run)
    twin = dict(next(r for r in state["archive"]["records"] if r["ok"]))
    twin.update(id="twin", source=twin["source"].replace("\n\n\ndef attention", "\n\n\n# a twin\ndef attention", 1))
    twin["key"] = program.key(twin["source"])
    state["archive"]["records"].append(twin)
    files.write_json(cli_run / "checkpoint.json", state)
    migrated = checkpoint.load(cli_run)
    records = {r["id"]: r for r in migrated["archive"]["records"]}
    first = next(r for r in migrated["archive"]["records"] if r["source"] == records["twin"]["source"])
    assert first["id"] != "twin" and records["twin"]["key"] == f"{first['key']}#twin"


def test_a_migrated_run_resumes_and_writes_the_finished_form(cli_run):
    from evo.cli import main

    _unfinished(cli_run)
    assert main(["resume", str(cli_run), "--max-programs", "50"]) == 0
    state = json.loads((cli_run / "checkpoint.json").read_text())
    assert state["archive"][migrate.FINISHED] and state["spent"]["programs"] >= 50
    assert all(canonical.tidy(r["source"], True) == r["source"] for r in state["archive"]["records"] if r["ok"])


def test_a_migrated_run_that_stops_at_once_still_leaves_its_checkpoint_in_the_finished_form(cli_run):
    from evo.cli import main

    _unfinished(cli_run)
    before = json.loads((cli_run / "checkpoint.json").read_text())
    assert main(["resume", str(cli_run), "--max-programs", str(before["spent"]["programs"])]) == 0
    state = json.loads((cli_run / "checkpoint.json").read_text())
    assert state["archive"][migrate.FINISHED] and state["spent"]["programs"] == before["spent"]["programs"]
    assert all(canonical.tidy(r["source"], True) == r["source"] for r in state["archive"]["records"] if r["ok"])


@pytest.mark.parametrize("broken", [{"records": "nope"}, {"records": [{"id": "x"}]}])
def test_a_corrupt_old_archive_is_a_one_line_error(cli_run, broken):
    state = json.loads((cli_run / "checkpoint.json").read_text())
    state["archive"] = {"n_heads": state["archive"]["n_heads"], **broken}
    files.write_json(cli_run / "checkpoint.json", state)
    from evo.errors import UserError

    with pytest.raises(UserError, match="is corrupt"):
        checkpoint.load(cli_run)
