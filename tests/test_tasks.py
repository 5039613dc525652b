"""Multiple-choice tasks: file shapes, one-line errors, and harness-style scoring on tiny models."""

import json
import re

import numpy as np
import pytest
import torch

from evo import perplexity, tasks
from evo.errors import UserError
from evo.tasks import formats, scoring
from tests.test_perplexity import _loaded


def _write(tmp_path, *records, name="task.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def test_builtin_task_has_at_least_200_original_items():
    task = tasks.load("builtin")
    assert task.shape == "generic" and len(task.items) >= 200
    assert len({i.context for i in task.items}) == len(task.items)
    assert {i.answer for i in task.items} == {0, 1, 2}


@pytest.mark.parametrize("record, context, choices, answer", [
    ({"context": "The sky is", "choices": ["blue", "loud"], "answer": 0}, "The sky is", ("blue", "loud"), 0),
    ({"context": "The sky is", "choices": ["blue", "loud"], "answer": "loud"}, "The sky is", ("blue", "loud"), 1),
    ({"question": "What gas do plants take in?", "distractor1": "oxygen", "distractor2": "helium",
      "distractor3": "neon", "correct_answer": "carbon dioxide", "support": " Plants breathe."},
     "Plants breathe.\nQuestion: What gas do plants take in?\nAnswer:", ("oxygen", "helium", "neon", "carbon dioxide"), 3),
    ({"goal": "Dry a wet phone", "sol1": "Put it in rice", "sol2": "Put it in soup", "label": 0},
     "Question: Dry a wet phone\nAnswer:", ("Put it in rice", "Put it in soup"), 0),
    ({"activity_label": "Baking", "ctx_a": "A man mixes flour.", "ctx_b": "he", "endings": ["bakes [title] it.", "x"],
      "label": "0"}, "Baking: A man mixes flour. He", ("bakes. it.", "x"), 0),
    ({"id": "1", "question": "Which is a liquid?", "choices": {"text": ["ice", "water"], "label": ["A", "B"]},
      "answerKey": "B"}, "Question: Which is a liquid?\nAnswer:", ("ice", "water"), 1),
    ({"question": {"stem": "Which is hot?", "choices": [{"text": "fire", "label": "1"}, {"text": "snow", "label": "2"}]},
      "answerKey": "1"}, "Question: Which is hot?\nAnswer:", ("fire", "snow"), 0),
])
def test_each_public_shape_maps_to_context_choices_answer(tmp_path, record, context, choices, answer):
    task = tasks.load(str(_write(tmp_path, record)))
    [item] = task.items
    assert (item.context, item.choices, item.answer) == (context, choices, answer)


@pytest.mark.parametrize("lines, message", [
    ([{"context": "a", "choices": ["b"], "answer": 0}, {"context": "a", "choices": ["b", "c"]}],
     "line 2: missing field 'answer'"),
    ([{"context": "a", "choices": ["b", "c"], "answer": 2}], "line 1: answer 2 is out of range for 2 choice(s)"),
    ([{"context": "a", "choices": [], "answer": 0}], "line 1: empty choices"),
    ([{"context": "a", "choices": ["b", " "], "answer": 0}], "line 1: choice 1 is empty"),
    (["", "{not json"], "line 2: not valid JSON"),
    ([{"prompt": "a"}], "line 1: not a known task shape"),
    ([{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}, {"context": "a", "choices": ["b"], "answer": 0}],
     "line 2: is generic, earlier lines are piqa"),
])
def test_bad_task_files_get_one_line_errors_with_the_line_number(tmp_path, lines, message):
    path = _write(tmp_path, *lines)
    with pytest.raises(UserError, match=re.escape(message)) as err:
        tasks.load(str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_missing_task_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        tasks.load(str(tmp_path / "nope.jsonl"))


@pytest.fixture
def gpt2(tiny_model_dirs):
    return _loaded(tiny_model_dirs["gpt2"], causal=True)


def test_unreplaced_log_probabilities_equal_a_plain_forward_pass(gpt2):
    items = [formats.Item("The cat sat on the", ("mat", "moon landing"), 0),
             formats.Item("Numbers: 1, 2,", ("3", "banana"), 0)]
    task = tasks.Task("t", "t", "generic", tuple(items))
    meter, requests = tasks.meter(gpt2, task, perplexity.Settings(batch_size=3))
    scores = scoring.loglik(meter, {})
    for item, which in zip(items, requests.of_choice):
        ctx = gpt2.tokenizer(item.context)["input_ids"]
        for choice, r in zip(item.choices, which):
            whole = gpt2.tokenizer(item.context + " " + choice)["input_ids"]
            with torch.no_grad():
                logp = torch.log_softmax(gpt2.model(input_ids=torch.tensor([whole])).logits[0].double(), -1)
            expected = sum(float(logp[t - 1, whole[t]]) for t in range(len(ctx), len(whole)))
            assert scores[r] == pytest.approx(expected, rel=1e-5)


def test_equal_choices_score_as_a_tie_not_a_win(gpt2):
    items = [formats.Item("The sky is", ("blue", "blue", "blue"), 0)]
    task = tasks.Task("t", "t", "generic", tuple(items))
    meter, requests = tasks.meter(gpt2, task, perplexity.Settings())
    assert len(requests.ids) == 1
    result = scoring.accuracy(items, requests, scoring.loglik(meter, {}))
    assert result["acc"] == pytest.approx(1 / 3) and result["acc_norm"] == pytest.approx(1 / 3)
    assert result["ties"] == 1


def test_accuracy_takes_the_highest_score_and_normalises_by_length():
    items = [formats.Item("c", ("a", "bbbb"), 1), formats.Item("c", ("x", "y"), 0)]
    requests = scoring.Requests([[1], [2], [3], [4]], [1, 1, 1, 1], [[0, 1], [2, 3]])
    result = scoring.accuracy(items, requests, np.array([-1.0, -2.0, -0.5, -3.0]))
    assert result["acc"] == 0.5          # item 1 picks "a", item 2 picks "x"
    assert result["acc_norm"] == 1.0     # per character "bbbb" (-0.5) beats "a" (-1.0)
    assert result["acc_stderr"] == pytest.approx(0.5)


def test_long_contexts_are_cut_from_the_left_keeping_the_continuation(gpt2):
    item = formats.Item("word " * 300, ("end",), 0)
    requests = scoring.encode(gpt2.tokenizer, [item], max_tokens=32)
    full = scoring.encode(gpt2.tokenizer, [item], max_tokens=10_000)
    assert len(requests.ids[0]) == 32 and requests.scored == full.scored
    assert requests.ids[0] == full.ids[0][-32:]


def test_an_encoder_cannot_score_a_task(tiny_model_dirs):
    bert = _loaded(tiny_model_dirs["bert"], causal=False)
    with pytest.raises(UserError, match="causal"):
        tasks.meter(bert, tasks.Task("t", "t", "generic", (formats.Item("a", ("b",), 0),)), perplexity.Settings())
