"""Prompt pieces: serialising a head compactly, worst rows, templates a user can override."""

import numpy as np
import pytest

from evo.errors import UserError
from operators.llm import prompting

TOKENS = ["<bos>", "The", " cat", " sat"]


def test_top_triples_keep_top_tenth_and_at_least_one_per_row():
    a = np.array([[1, 0, 0, 0], [.9, .1, 0, 0], [.5, .3, .2, 0], [.4, .3, .2, .1]])
    rows = prompting.top_triples(a, frac=0.1)
    # 16 entries: the top 10 % is the two largest (1.0, .9); row 2 and 3 keep their best one.
    assert rows == [[(0, 1.0)], [(0, .9)], [(0, .5)], [(0, .4)]]
    wider = prompting.top_triples(a, frac=0.5)
    assert wider[2] == [(0, .5), (1, .3), (2, .2)] and wider[3] == [(0, .4), (1, .3), (2, .2)]


def test_head_view_shows_tokens_and_each_query_top_keys():
    a = np.eye(4)[[0, 0, 1, 2]]              # previous token
    text = prompting.head_view(TOKENS, a)
    assert text.splitlines()[0] == 'tokens: 0:"<bos>" 1:"The" 2:" cat" 3:" sat"'
    assert '  3 " sat" -> 2 " cat" 1.00' in text


def test_worst_rows_show_head_and_program_side_by_side():
    a = np.eye(4)[[0, 0, 1, 2]]
    p = np.eye(4)[[0, 0, 0, 0]]
    rows_iou = np.array([1.0, 1.0, 0.0, 0.0])
    text = prompting.worst_rows(TOKENS, a, p, rows_iou, count=1)
    assert text == '  row 2 " cat" (row IoU 0.00)\n    head:    1 "The" 1.00\n    program: 0 "<bos>" 1.00'


def test_weights_print_without_leading_zero():
    assert prompting.row_text(TOKENS, [(1, 0.625), (0, 0.05)]) == '1 "The" .62, 0 "<bos>" .05'


def test_template_override_replaces_only_that_file(tmp_path):
    (tmp_path / "edit.txt").write_text("Edit this:\n$parent\nCost: $$0")
    templates = prompting.load_templates(tmp_path)
    assert templates["edit"].substitute(parent="P") == "Edit this:\nP\nCost: $0"
    assert templates["rewrite"].template == (prompting.PROMPTS_DIR / "rewrite.txt").read_text()


def test_bad_templates_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        prompting.load_templates(tmp_path / "missing")
    (tmp_path / "crossover.txt").write_text("costs $5 now")
    with pytest.raises(UserError, match="stray"):
        prompting.load_templates(tmp_path)


def test_system_message_holds_contract_and_every_prelude_helper():
    from evo import prelude
    text = prompting.system_message(prompting.load_templates())
    assert "def attention(tokens: list[str]) -> np.ndarray" in text
    from evo import linguistic

    assert all(f"`{name}(" in text for name in prelude.__all__ if name not in prelude.LINGUISTIC)
    assert all((f"`{name}" in text) == linguistic.available() for name in prelude.LINGUISTIC)
