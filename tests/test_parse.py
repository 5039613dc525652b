"""Reply parsing: code extraction, trimming, and SEARCH/REPLACE edits."""

import ast

from operators.llm import parse

PROGRAM = '''import numpy as np


def attention(tokens):
    n = len(tokens)
    out = np.zeros((n, n))
    for i in range(n):
        out[i, max(i - 1, 0)] = 1.0
    return out
'''


def test_fenced_program_with_prose_around_is_extracted():
    reply = f"Here is a better program.\n\n```python\n{PROGRAM}```\n\nIt attends to the previous token."
    parsed = parse.extract_program(reply)
    assert parsed.error is None
    assert ast.dump(ast.parse(parsed.source)) == ast.dump(ast.parse(PROGRAM))


def test_unfenced_program_after_prose_is_extracted():
    parsed = parse.extract_program("Sure! The head looks local.\n" + PROGRAM)
    assert parsed.source is not None
    assert "def attention" in parsed.source and "Sure" not in parsed.source


def test_truncated_reply_is_trimmed_until_it_parses():
    reply = "```python\n" + PROGRAM + "\n\ndef helper(x):\n    return [x,"
    parsed = parse.extract_program(reply)
    assert parsed.source is not None
    assert "helper" not in parsed.source
    ast.parse(parsed.source)


def test_truncated_inside_attention_is_a_failure_with_reason():
    parsed = parse.extract_program("```python\ndef attention(tokens):\n    return np.eye(len(tok")
    assert parsed.source is None
    assert "no parsable program" in parsed.error


def test_reply_without_program_is_a_failure():
    parsed = parse.extract_program("I cannot help with that.")
    assert parsed.source is None and parsed.error == "reply has no `def attention`"
    assert parse.extract_program("  ").error == "empty reply"


def test_examples_and_unused_functions_are_dropped_helpers_kept():
    reply = '''```python
import numpy as np
WINDOW = 3

def unused(x):
    return x

def weight(d):
    return 1.0 / (1 + d)

def attention(tokens):
    n = len(tokens)
    return np.array([[weight(abs(i - j)) if abs(i - j) < WINDOW else 0.0 for j in range(n)] for i in range(n)])

print(attention(["a", "b"]))
if __name__ == "__main__":
    attention(["x"])
```'''
    source = parse.extract_program(reply).source
    names = [getattr(n, "name", None) for n in ast.parse(source).body]
    assert names == [None, None, "weight", "attention"]
    assert "WINDOW = 3" in source and "print" not in source and "__main__" not in source


def test_last_of_several_blocks_wins_and_takes_helpers_from_earlier_blocks():
    reply = (
        "First a helper:\n```python\ndef near(i, j):\n    return abs(i - j) <= 1\n```\n"
        "Old version:\n```python\ndef attention(tokens):\n    return 1\n```\n"
        "Final:\n```python\nimport numpy as np\ndef attention(tokens):\n"
        "    n = len(tokens)\n    return np.array([[near(i, j) for j in range(n)] for i in range(n)], float)\n```\n"
    )
    source = parse.extract_program(reply).source
    assert "def near" in source and "return 1\n" not in source


def test_edit_blocks_apply_to_parent():
    reply = (
        "Shift by two instead:\n<<<<<<< SEARCH\n        out[i, max(i - 1, 0)] = 1.0\n=======\n"
        "        out[i, max(i - 2, 0)] = 1.0\n>>>>>>> REPLACE\n"
    )
    parsed = parse.apply_edits(PROGRAM, reply)
    assert parsed.error is None and parsed.form == "edit"
    assert parsed.source == PROGRAM.replace("i - 1", "i - 2")


def test_edit_with_trailing_spaces_and_dedent_still_applies():
    reply = "<<<<<<< SEARCH\nout[i, max(i - 1, 0)] = 1.0   \n=======\nout[i, i] = 1.0\n>>>>>>> REPLACE"
    parsed = parse.apply_edits(PROGRAM, reply)
    assert parsed.error is None
    assert "        out[i, i] = 1.0\n" in parsed.source


def test_edit_that_does_not_apply_is_an_error_result():
    reply = "<<<<<<< SEARCH\n    return tokens\n=======\n    return None\n>>>>>>> REPLACE\n"
    parsed = parse.apply_edits(PROGRAM, reply)
    assert parsed.source is None
    assert parsed.error.startswith("edit 1 of 1: SEARCH text not found in parent")


def test_edit_that_breaks_syntax_is_an_error_result():
    reply = "<<<<<<< SEARCH\n    n = len(tokens)\n=======\n    n = len(tokens\n>>>>>>> REPLACE\n"
    parsed = parse.apply_edits(PROGRAM, reply)
    assert parsed.source is None and "syntax error at line" in parsed.error


def test_edit_reply_with_whole_program_is_taken_as_rewrite():
    parsed = parse.apply_edits(PROGRAM, "```python\n" + PROGRAM.replace("i - 1", "i") + "```")
    assert parsed.form == "rewrite" and "out[i, max(i, 0)]" in parsed.source
