"""Multiple-choice task files: the public JSONL shapes, read into one item form.

Every line becomes an `Item(context, choices, answer)`; a choice is scored as the
continuation `" " + choice` after the context, as lm-evaluation-harness does. The field
mapping of each shape (docs/tasks.md shows an example of each):

| shape | context | choices | answer |
|---|---|---|---|
| generic | `context` | `choices` (list) | `answer` (index, or the text of a choice) |
| SciQ | `support` + "\\nQuestion: " + `question` + "\\nAnswer:" | `distractor1..3`, `correct_answer` | `correct_answer` (the 4th) |
| PIQA | "Question: " + `goal` + "\\nAnswer:" | `sol1`, `sol2` | `label` (0 or 1) |
| HellaSwag | `activity_label` + ": " + `ctx_a` + " " + `ctx_b` (capitalised), cleaned | `endings`, cleaned | `label` |
| ARC (Easy, Challenge) | "Question: " + `question` (or `question.stem`) + "\\nAnswer:" | `choices.text` (or `question.choices[].text`) | `answerKey` among the choice labels |

HellaSwag's cleaning is the harness's: strip, " [title]" to ". ", drop other [tags], collapse
double spaces. A malformed line is a one-line error naming the file, the line and the field.
"""

from __future__ import annotations

import dataclasses
import json
import re

from evo.errors import UserError


@dataclasses.dataclass(frozen=True)
class Item:
    context: str
    choices: tuple[str, ...]
    answer: int   # index into choices


class _Bad(Exception):
    """A line's problem, without the file and line (added by `parse_lines`)."""


def parse_lines(lines, where: str) -> tuple[list[Item], str]:
    """Returns (items, shape name) from JSONL lines; UserError `where line N: problem` otherwise."""
    items, shape = [], None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as err:
                raise _Bad(f"not valid JSON ({err.msg})") from None
            if not isinstance(doc, dict):
                raise _Bad("expected a JSON object")
            name = detect(doc)
            if shape is not None and name != shape:
                raise _Bad(f"is {name}, earlier lines are {shape}; one file holds one shape")
            shape = name
            items.append(_check(READERS[name](doc)))
        except _Bad as bad:
            raise UserError(f"{where} line {number}: {bad}") from None
    if not items:
        raise UserError(f"{where} holds no items")
    return items, shape


def detect(doc: dict) -> str:
    """Returns the shape a record has, by its fields."""
    if "context" in doc or "choices" in doc and "answer" in doc:
        return "generic"
    if "correct_answer" in doc or "distractor1" in doc:
        return "sciq"
    if "goal" in doc or "sol1" in doc:
        return "piqa"
    if "endings" in doc or "ctx_a" in doc:
        return "hellaswag"
    if "answerKey" in doc:
        return "arc"
    raise _Bad(f"not a known task shape (fields {', '.join(sorted(doc)) or 'none'}): expected "
               "{context, choices, answer}, SciQ, PIQA, HellaSwag or ARC fields")


def _field(doc: dict, name: str, kind=str):
    if name not in doc:
        raise _Bad(f"missing field {name!r}")
    value = doc[name]
    if kind is str and not isinstance(value, str):
        raise _Bad(f"field {name!r} must be text, got {type(value).__name__}")
    return value


def _generic(doc: dict) -> Item:
    context, choices = _field(doc, "context"), _field(doc, "choices", list)
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise _Bad("field 'choices' must be a list of texts")
    if not choices:
        raise _Bad("empty choices: an item needs at least one choice")
    answer = _field(doc, "answer", object)
    if isinstance(answer, str) and not answer.lstrip("-").isdigit():
        if answer not in choices:
            raise _Bad(f"answer {answer!r} is not one of the choices")
        answer = choices.index(answer)
    return Item(context, tuple(choices), _index(answer, len(choices)))


def _index(answer, n: int) -> int:
    if isinstance(answer, bool) or not isinstance(answer, (int, str)) or (isinstance(answer, str)
                                                                         and not answer.lstrip("-").isdigit()):
        raise _Bad(f"answer must be a choice index, got {answer!r}")
    if not 0 <= int(answer) < n:
        raise _Bad(f"answer {int(answer)} is out of range for {n} choice(s)")
    return int(answer)


def _sciq(doc: dict) -> Item:
    support = doc.get("support") or ""
    question = _field(doc, "question")
    choices = [_field(doc, f"distractor{i}") for i in (1, 2, 3)] + [_field(doc, "correct_answer")]
    context = (support.lstrip() + "\n" if support.strip() else "") + f"Question: {question}\nAnswer:"
    return Item(context, tuple(choices), 3)


def _piqa(doc: dict) -> Item:
    choices = (_field(doc, "sol1"), _field(doc, "sol2"))
    return Item(f"Question: {_field(doc, 'goal')}\nAnswer:", choices, _index(_field(doc, "label", object), 2))


def _clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    return re.sub("\\[.*?\\]", "", text).replace("  ", " ")


def _hellaswag(doc: dict) -> Item:
    ctx = _field(doc, "ctx_a") + " " + _field(doc, "ctx_b").capitalize() if "ctx_a" in doc else _field(doc, "ctx")
    endings = _field(doc, "endings", list)
    if not isinstance(endings, list) or not all(isinstance(e, str) for e in endings):
        raise _Bad("field 'endings' must be a list of texts")
    context = _clean(f"{doc.get('activity_label', '')}: {ctx}" if doc.get("activity_label") else ctx)
    return Item(context, tuple(_clean(e) for e in endings), _index(_field(doc, "label", object), len(endings)))


def _arc(doc: dict) -> Item:
    question = _field(doc, "question", object)
    if isinstance(question, dict):  # AI2's own files: question.stem, question.choices[{text, label}]
        stem, listed = question.get("stem"), question.get("choices")
        texts = [c.get("text") for c in listed or [] if isinstance(c, dict)]
        labels = [c.get("label") for c in listed or [] if isinstance(c, dict)]
    else:  # the Hugging Face layout: question, choices {text: [...], label: [...]}
        stem, listed = question, _field(doc, "choices", dict)
        texts, labels = (listed.get("text"), listed.get("label")) if isinstance(listed, dict) else (None, None)
    if not isinstance(stem, str) or not isinstance(texts, list) or not isinstance(labels, list):
        raise _Bad("ARC record needs a question and choices with text and label")
    key = _field(doc, "answerKey")
    if key not in labels:
        raise _Bad(f"answerKey {key!r} is not one of the choice labels {labels}")
    return Item(f"Question: {stem}\nAnswer:", tuple(texts), labels.index(key))


READERS = {"generic": _generic, "sciq": _sciq, "piqa": _piqa, "hellaswag": _hellaswag, "arc": _arc}


def _check(item: Item) -> Item:
    if not item.choices:
        raise _Bad("empty choices: an item needs at least one choice")
    for i, choice in enumerate(item.choices):
        if not isinstance(choice, str) or not choice.strip():
            raise _Bad(f"choice {i} is empty")
    if not item.context.strip():
        raise _Bad("empty context")
    return item
