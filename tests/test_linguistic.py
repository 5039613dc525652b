"""The linguistic vocabulary: annotations by character offsets, the prelude helpers, the sandbox path."""

import json
import subprocess
import sys

import numpy as np
import pytest

from evo import linguistic, prelude, run, sandbox
from evo import parsing
from evo.errors import UserError
from evo.prelude import linguistic as helpers

needs_spacy = pytest.mark.skipif(not linguistic.available(), reason="the linguistic extra is not installed")

FOX = ["<bos>", "The", " quick", " brown", " fox", " jumps", " over", " the", " la", "zy", " dog", "."]

SCORED = '''
def attention(tokens):
    n = len(tokens)
    s = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            s[i, j] = 3.0 * is_head_of(tokens, i, j) + 1.0 * (is_noun(tokens, i) and is_det(tokens, j))
    return softmax_rows(s)
'''


def test_softmax_rows_turns_scores_into_rows_and_gives_minus_infinity_nothing():
    s = np.array([[0.0, np.log(3.0), -np.inf], [-np.inf, -np.inf, -np.inf], [1000.0, 1000.0, 0.0]])
    out = prelude.softmax_rows(s)
    np.testing.assert_allclose(out[0], [0.25, 0.75, 0.0])
    np.testing.assert_allclose(out[1], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(out[2], [0.5, 0.5, 0.0], atol=1e-12)


@needs_spacy
def test_subword_pieces_share_their_words_annotation_and_specials_have_none():
    a = linguistic.for_sentences([FOX])[0]
    assert a.word[0] == -1 and a.pos[0] == "" and a.head[0] == -1
    assert a.word[8] == a.word[9] and a.pos[8] == a.pos[9] == "ADJ"   # " la" + "zy" is one word
    assert a.pos[4] == "NOUN" and a.pos[7] == "DET" and a.dep[7] == "det"
    assert a.head[7] == 10                                           # "the" -> "dog"
    assert a.head[5] == -1 and a.dep[5] == "ROOT"                    # "jumps" is the root
    assert a.chunk[7] == a.chunk[10] != a.chunk[4]


@needs_spacy
def test_wordpiece_tokens_of_an_encoder_map_to_words_too():
    toks = ["[CLS]", " the", " dogs", " were", " play", "ing", " outside", "[SEP]"]
    a = linguistic.for_sentences([toks])[0]
    assert a.word[0] == a.word[-1] == -1
    assert a.word[4] == a.word[5] and a.pos[4] == "VERB"
    assert helpers.is_noun(toks, 2) and helpers.is_head_of(toks, 2, 4)


@needs_spacy
def test_a_scored_program_on_linguistic_terms_runs_in_the_sandbox():
    out = sandbox.run(SCORED, [FOX, FOX[:6]])
    assert out.ok, out.error
    m = out.matrices[0]
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    assert m[7].argmax() == 10 and m[10].argmax() in (6,)        # "the" looks at "dog"; "dog" at "over"
    assert m[8, 10] == pytest.approx(m[9, 10])                    # both pieces of "lazy" -> "dog"


def test_a_linguistic_program_without_the_extra_gets_a_one_line_error(monkeypatch):
    helpers._KNOWN.clear()

    def missing():
        raise UserError(f"the linguistic helpers need spaCy and an English pipeline: {linguistic.INSTALL}")

    monkeypatch.setattr(parsing, "pipeline", missing)
    out = sandbox.run(SCORED, [["<bos>", " a", " b"]])
    assert not out.ok and "pip install 'headcode[linguistic]'" in out.error and "\n" not in out.error


def test_programs_that_do_not_use_the_helpers_never_parse(monkeypatch):
    monkeypatch.setattr(linguistic, "for_sentences", lambda s: pytest.fail("parsed a sentence"))
    out = sandbox.run("def attention(tokens):\n    return np.ones((len(tokens), len(tokens)))\n", [FOX])
    assert out.ok


@needs_spacy
def test_annotations_are_written_beside_the_set_once_and_preloaded(tiny_attention_set):
    aset = tiny_attention_set
    path = linguistic.ensure(aset)
    name, version = linguistic.installed()
    assert path.parent == aset.path and path.name == f"linguistic-{name}-{version}.json"
    doc = json.loads(path.read_text())
    assert doc["pipeline"] == name and doc["version"] == version and len(doc["sentences"]) == len(aset.tokens)
    helpers._KNOWN.clear()
    assert linguistic.preload(aset.path, [list(t) for t in aset.tokens])
    assert len(helpers._KNOWN) == len({tuple(t) for t in aset.tokens})
    stamp = path.stat().st_mtime_ns
    linguistic.ensure(aset)
    assert path.stat().st_mtime_ns == stamp


@needs_spacy
def test_an_exported_linguistic_program_runs_on_its_own(tmp_path):
    file = tmp_path / "prog.py"
    file.write_text("import numpy as np\nfrom evo.prelude import softmax_rows, is_head_of, is_noun, is_det\n"
                    + SCORED)
    code = (f"import runpy; m = runpy.run_path({str(file)!r}); "
            f"print(m['attention']({FOX!r}).argmax(axis=1).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[7] == 10


def test_resume_refuses_a_linguistic_run_without_the_extra(tmp_path, monkeypatch):
    config = run.RunConfig(model="m", corpus=None, split="search", sentence_tokens=64, attention_set={},
                           captured=True, seed=0, budgets={}, settings={}, operators={},
                           vocabulary={"linguistic": True, "pipeline": "en_core_web_sm", "version": "3.8.0"})
    monkeypatch.setattr(linguistic, "installed", lambda: None)
    with pytest.raises(UserError, match="linguistic vocabulary .* not installed here: pip install"):
        run.check_vocabulary(tmp_path, config)
    run.check_vocabulary(tmp_path, run.RunConfig(**{**config.__dict__, "vocabulary": {"linguistic": False}}))


def test_a_new_run_gets_the_linguistic_vocabulary_when_installed_unless_told_otherwise(monkeypatch):
    monkeypatch.setattr(linguistic, "installed", lambda: ("en_core_web_sm", "3.8.0"))
    assert run.vocabulary() == {"linguistic": True, "pipeline": "en_core_web_sm", "version": "3.8.0", "invented": True,
                                 "library": True}
    assert run.vocabulary("base") == {"linguistic": False, "invented": True, "library": True}
    monkeypatch.setattr(linguistic, "installed", lambda: None)
    assert run.vocabulary() == {"linguistic": False, "invented": True, "library": True}
    with pytest.raises(UserError, match="--vocabulary linguistic needs spaCy"):
        run.vocabulary("linguistic")


@needs_spacy
def test_score_term_matrices_follow_the_words_annotations():
    a = linguistic.for_sentences([FOX])[0]
    helpers.provide(FOX, a)
    assert prelude.query_is(FOX, "NOUN")[4].all() and not prelude.query_is(FOX, "NOUN")[3].any()
    assert prelude.key_is(FOX, "DET")[:, 7].all() and prelude.key_dep(FOX, "det")[0, 7] == 1
    assert prelude.chunk_matrix(FOX)[7, 10] == 1 and prelude.chunk_matrix(FOX)[4, 10] == 0
    np.testing.assert_array_equal(prelude.dependent_matrix(FOX), prelude.head_matrix(FOX).T)
    assert prelude.sibling_matrix(FOX)[7, 8] == 1   # "the" and "lazy" both hang off "dog"
    assert prelude.grandparent_matrix(FOX)[7].argmax() == 6  # the -> dog -> over


@needs_spacy
def test_previous_noun_and_verb_look_back_to_the_first_piece_of_the_nearest_earlier_word():
    toks = ["<bos>", "The", " cat", " sat", " on", " the", " ma", "ttress", "."]
    helpers.provide(toks, linguistic.for_sentences([toks])[0])
    noun = prelude.previous_noun(toks)
    assert noun[:3].sum() == 0                                 # no noun before "cat" is done
    assert noun[3:8].argmax(axis=1).tolist() == [2] * 5        # "sat" ... "ttress" -> "cat"
    assert noun[8].argmax() == 6                               # "." -> " ma", the noun's first piece
    assert prelude.previous_verb(toks)[4:].argmax(axis=1).tolist() == [3] * 5


def test_the_linguistic_patterns_join_the_basis_only_with_that_vocabulary():
    from operators.shared import account, basis

    plain, rich = set(basis.names(True)), set(basis.names(True, linguistic=True))
    assert not plain & set(prelude.LINGUISTIC_PATTERNS)
    assert rich - plain == set(prelude.LINGUISTIC_PATTERNS)
    mix = "def attention(tokens):\n    return 0.7 * causal_rows(head_matrix(tokens)) + 0.3 * causal_rows(sink(tokens))\n"
    assert account.describe(mix, True) == "70 % on its word's dependency head; 30 % on the first token"
