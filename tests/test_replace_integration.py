"""The cost schedule and the built-in task on the real default model (gemma-3-270m)."""

import json

import pytest
import torch

from evo import cli, forward, models, perplexity, tasks
from evo.tasks import scoring
from test_replace import _write_export

pytestmark = pytest.mark.integration


def test_cost_schedule_and_builtin_task_on_gemma(tmp_path, capsys):
    export = _write_export(tmp_path / "exp", "gemma-3-270m", 18, 4)
    out = tmp_path / "r.json"
    assert cli.main(["replace", str(export), "--fraction", "0.03", "--select-sentences", "6", "--sentences", "10",
                     "--candidates", "2", "--task", "builtin", "--task-items", "40", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["schedule"] == "cost" and len(report["replaced"]) == 2
    front = json.loads((export / "front.json").read_text())
    assert len(report["candidates"]) == sum(min(2, len({e["program"] for e in h["front"]})) for h in front["heads"])
    chosen = sorted((c["cost"], c["layer"], c["head"]) for c in report["candidates"] if c["chosen"])
    assert {(e["layer"], e["head"]) for e in report["replaced"]} <= {(l, h) for _, l, h in chosen[:6]}
    task = report["task"]
    assert task["unmodified"]["acc"] > 0.6  # three choices: chance is a third
    assert task["uniform"]["acc"] <= task["unmodified"]["acc"] + 0.05


def test_runs_from_a_later_layer_and_task_scores_match_plain_forward_passes_on_gemma():
    loaded = models.load()
    ids = perplexity.encode(loaded.tokenizer, ["The cat sat on the mat.", "Is it raining? No, it is sunny."], 64)
    runner = forward.Runner(loaded, ids, batch_size=2)
    reference = runner.run(record=True)
    again = runner.run(start=9, inputs=reference.inputs)
    assert runner.can_start_later is True
    torch.testing.assert_close(again.nll, reference.nll, rtol=1e-5, atol=1e-5)
    task = tasks.load("builtin").head(2)
    meter, requests = tasks.meter(loaded, task, perplexity.Settings())
    scores = scoring.loglik(meter, {})
    item, which = task.items[0], requests.of_choice[0]
    for choice, r in zip(item.choices, which):
        ctx = loaded.tokenizer(item.context)["input_ids"]
        whole = loaded.tokenizer(item.context + " " + choice)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(loaded.model(input_ids=torch.tensor([whole])).logits[0].double(), -1)
        assert scores[r] == pytest.approx(sum(float(logp[t - 1, whole[t]]) for t in range(len(ctx), len(whole))),
                                          rel=1e-4)
