"""Tests for program length, canonical form and keys."""

import ast

import pytest

from evo import program

SOURCE = '''"""Attends to the previous token."""
import numpy as np


def attention(tokens):
    """Docstring that must not count."""
    n = len(tokens)  # a comment
    return np.eye(n, k=-1)
'''


def test_length_excludes_docstrings_and_comments():
    bare = "import numpy as np\n\ndef attention(tokens):\n    n = len(tokens)\n    return np.eye(n, k=-1)\n"
    assert program.length(SOURCE) == program.length(bare)


def test_length_counts_ast_nodes_without_expression_contexts():
    # Module, Expr, Name(x): three nodes; the Load context is not program text
    assert program.length("x") == 3
    # Module, Assign, Name(y), BinOp, Name(x), Add, Constant(1)
    assert program.length("y = x + 1") == 7


def test_length_grows_with_program_size():
    longer = SOURCE.replace("np.eye(n, k=-1)", "np.eye(n, k=-1) + 0.0 * np.eye(n)")
    assert program.length(longer) > program.length(SOURCE)


def test_docstring_only_function_keeps_a_valid_body():
    src = 'def attention(tokens):\n    """Only a docstring."""\n'
    assert "pass" in program.normalise(src)
    ast.parse(program.normalise(src))


def test_normalise_ignores_formatting_comments_and_docstrings():
    reformatted = 'import numpy as np\ndef attention( tokens ):\n    n=len(tokens)\n    return np.eye(n,k=-1)'
    assert program.normalise(SOURCE) == program.normalise(reformatted)
    assert program.key(SOURCE) == program.key(reformatted)


def test_key_differs_for_different_programs():
    other = SOURCE.replace("k=-1", "k=-2")
    assert program.key(SOURCE) != program.key(other)
    assert len(program.key(SOURCE)) == 64


def test_string_statement_that_is_not_first_is_kept():
    src = 'def attention(tokens):\n    x = 1\n    "not a docstring"\n    return x\n'
    assert "not a docstring" in program.normalise(src)


def test_syntax_error_is_a_one_line_value_error_and_key_still_works():
    with pytest.raises(ValueError, match="syntax error at line 2"):
        program.length("def attention(tokens):\nreturn 1\n")
    assert len(program.key("def (")) == 64


def test_docstring_returns_first_line():
    assert program.docstring(SOURCE) == "Attends to the previous token."
    assert program.docstring("x = 1") is None
