"""Tests for evo.corpus: the built-in splits and user corpus parsing."""

import collections
import errno
import hashlib
import json
import pathlib

import pytest

from evo import corpus
from evo.errors import UserError

# The documented rule (evo/data/CORPUS.md): the i-th sentence of each kind goes to PATTERN[i % 9].
PATTERN = ("search", "perplexity", "validation", "search", "perplexity",
           "search", "validation", "perplexity", "search")


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


# --- built-in corpus -------------------------------------------------------------------------


def test_builtin_splits_have_documented_sizes():
    assert corpus.sizes() == {"search": 220, "validation": 110, "perplexity": 165}
    for split, size in corpus.sizes().items():
        assert len(corpus.load(split=split)) == size


def test_builtin_corpus_has_at_least_450_distinct_sentences():
    texts = [text for _, _, text in corpus._builtin_rows()]
    assert len(texts) >= 450
    assert len(set(texts)) == len(texts)


def test_builtin_splits_are_disjoint():
    loaded = {split: set(corpus.load(split=split).sentences) for split in corpus.SPLITS}
    assert not loaded["search"] & loaded["validation"]
    assert not loaded["search"] & loaded["perplexity"]
    assert not loaded["validation"] & loaded["perplexity"]


def test_every_split_mixes_every_kind():
    all_kinds = {kind for _, kind, _ in corpus._builtin_rows()}
    assert len(all_kinds) >= 10
    for split in corpus.SPLITS:
        counts = corpus.kind_counts(split)
        assert set(counts) == all_kinds
        assert max(counts.values()) - min(counts.values()) <= 1


def test_builtin_split_column_follows_the_documented_rule():
    index = collections.Counter()
    for split, kind, text in corpus._builtin_rows():
        assert split == PATTERN[index[kind] % len(PATTERN)], text
        index[kind] += 1


def test_builtin_prefix_interleaves_kinds():
    loaded = corpus.load(split="validation")
    n_kinds = len(corpus.kind_counts("validation"))
    assert len(set(loaded.kinds[:n_kinds])) == n_kinds
    assert len(loaded.kinds) == len(loaded.sentences)


def test_builtin_sentences_are_mostly_8_to_40_words():
    texts = [text for _, _, text in corpus._builtin_rows()]
    in_range = [8 <= len(text.split()) <= 40 for text in texts]
    assert sum(in_range) / len(texts) >= 0.9
    assert all(text == text.strip() and "\t" not in text for text in texts)


def test_builtin_repeated_kind_really_repeats_words():
    loaded = corpus.load(split="search")
    repeated = [s for s, k in zip(loaded.sentences, loaded.kinds) if k == "repeated"]
    for sentence in repeated:
        words = [w.strip(".,;!?").lower() for w in sentence.split()]
        content = [w for w in words if w not in {"the", "and", "a", "to", "in", "of"}]
        assert len(set(content)) < len(content), sentence


def test_builtin_source_names_the_split():
    assert corpus.load().source == "builtin:search"
    assert corpus.load(split="perplexity").source == "builtin:perplexity"
    assert corpus.load().warnings == ()


def test_unknown_split_is_a_user_error():
    with pytest.raises(UserError, match="unknown corpus split 'train'.*search, validation, perplexity"):
        corpus.load(split="train")
    with pytest.raises(UserError, match="unknown corpus split"):
        corpus.kind_counts("test")


# --- fingerprint -----------------------------------------------------------------------------


def test_fingerprint_is_stable_across_loads():
    first = corpus.load(split="search")
    corpus._builtin_rows.cache_clear()
    assert corpus.load(split="search").fingerprint == first.fingerprint
    assert len(first.fingerprint) == 16
    assert int(first.fingerprint, 16) >= 0


def test_fingerprint_has_a_fixed_value_for_fixed_sentences():
    # Pinned: attention-set caches are keyed on it, so its definition must not drift.
    documented = hashlib.sha256('["a b","c"]'.encode("utf-8")).hexdigest()[:16]
    assert corpus.fingerprint(["a b", "c"]) == documented == "7286faa1a2a3e69b"
    assert corpus.fingerprint(("é",)) == hashlib.sha256('["é"]'.encode("utf-8")).hexdigest()[:16]


def test_fingerprint_depends_on_order_and_boundaries():
    base = corpus.fingerprint(["a b", "c"])
    assert corpus.fingerprint(["c", "a b"]) != base
    assert corpus.fingerprint(["a", "b c"]) != base
    assert corpus.fingerprint(["a b c"]) != base


def test_fingerprints_of_the_splits_differ():
    prints = {corpus.load(split=split).fingerprint for split in corpus.SPLITS}
    assert len(prints) == 3


def test_same_sentences_in_txt_and_jsonl_share_a_fingerprint(tmp_path):
    txt = write(tmp_path, "a.txt", "One sentence here.\nAnother one.\n")
    jsonl = write(tmp_path, "a.jsonl", '{"text": "One sentence here."}\n{"text": "Another one."}\n')
    assert corpus.load(txt).fingerprint == corpus.load(jsonl).fingerprint


# --- .txt ------------------------------------------------------------------------------------


def test_txt_reads_one_sentence_per_line_and_skips_blank_lines(tmp_path):
    path = write(tmp_path, "s.txt", "\nFirst line.\n   \n\t\n  Second line.  \r\nThird.")
    loaded = corpus.load(path)
    assert loaded.sentences == ("First line.", "Second line.", "Third.")
    assert loaded.source == path
    assert loaded.warnings == ()
    assert loaded.kinds is None


def test_txt_accepts_a_pathlike_and_an_uppercase_suffix(tmp_path):
    path = tmp_path / "S.TXT"
    path.write_text("Hello there.\n", encoding="utf-8")
    assert corpus.load(path).sentences == ("Hello there.",)


def test_txt_drops_a_utf8_byte_order_mark(tmp_path):
    path = write(tmp_path, "bom.txt", b"\xef\xbb\xbfStarts with a mark.\n")
    assert corpus.load(path).sentences == ("Starts with a mark.",)


def test_undecodable_bytes_are_replaced_and_reported(tmp_path):
    path = write(tmp_path, "bad.txt", b"good one\nbad \xff here\nfine\nalso \xc3 bad\n")
    loaded = corpus.load(path)
    assert loaded.sentences == ("good one", "bad \ufffd here", "fine", "also \ufffd bad")
    assert len(loaded.warnings) == 1
    assert "2 line(s)" in loaded.warnings[0]
    assert "line 2, 4" in loaded.warnings[0]
    assert "U+FFFD" in loaded.warnings[0]


def test_bad_bytes_warning_lists_at_most_five_lines(tmp_path):
    path = write(tmp_path, "many.txt", b"".join(b"x\xff %d\n" % i for i in range(8)))
    (warning,) = corpus.load(path).warnings
    assert "8 line(s)" in warning and "line 1, 2, 3, 4, 5 and 3 more" in warning


def test_utf16_file_is_a_user_error(tmp_path):
    path = write(tmp_path, "u16.txt", "Hello.\n".encode("utf-16"))
    with pytest.raises(UserError, match="UTF-16.*UTF-8"):
        corpus.load(path)


def test_duplicate_sentences_are_kept_with_a_warning(tmp_path):
    path = write(tmp_path, "dup.txt", "same\nother\nsame\nsame\n")
    loaded = corpus.load(path)
    assert loaded.sentences == ("same", "other", "same", "same")
    assert loaded.warnings == (f"{path}: 2 sentence(s) repeat an earlier one; repeats are kept",)


# --- .jsonl ----------------------------------------------------------------------------------


def test_jsonl_reads_text_fields_and_ignores_other_fields(tmp_path):
    lines = [json.dumps({"text": "First.", "id": 1}), "", json.dumps({"text": "  Second. "})]
    loaded = corpus.load(write(tmp_path, "s.jsonl", "\n".join(lines) + "\n"))
    assert loaded.sentences == ("First.", "Second.")
    assert loaded.warnings == ()


def test_jsonl_keeps_unicode_and_escaped_newlines(tmp_path):
    path = write(tmp_path, "u.jsonl", json.dumps({"text": "Café\nnext"}) + "\n")
    assert corpus.load(path).sentences == ("Café\nnext",)


def test_jsonl_malformed_line_names_the_line_number(tmp_path):
    path = write(tmp_path, "bad.jsonl", '{"text": "ok"}\n\n{"text": "broken"\n')
    with pytest.raises(UserError, match=r"bad\.jsonl line 3: not valid JSON"):
        corpus.load(path)


@pytest.mark.parametrize(
    "record, message",
    [
        ('["a list"]', r"line 2: expected an object .* got a JSON array"),
        ('{"sentence": "x"}', r'line 2: the object has no "text" field'),
        ('{"text": 5}', r'line 2: "text" must be a string, got a JSON number'),
        ('{"text": null}', r'line 2: "text" must be a string, got a JSON null'),
    ],
)
def test_jsonl_wrong_record_shape_names_the_line(tmp_path, record, message):
    path = write(tmp_path, "shape.jsonl", '{"text": "fine"}\n' + record + "\n")
    with pytest.raises(UserError, match=message):
        corpus.load(path)


def test_jsonl_empty_texts_are_skipped_with_a_warning(tmp_path):
    path = write(tmp_path, "e.jsonl", '{"text": ""}\n{"text": "kept"}\n{"text": "  "}\n')
    loaded = corpus.load(path)
    assert loaded.sentences == ("kept",)
    assert loaded.warnings == (f'{path}: skipped 2 object(s) whose "text" is empty',)


# --- bad paths -------------------------------------------------------------------------------


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="corpus file not found: .*nope.txt"):
        corpus.load(str(tmp_path / "nope.txt"))


def test_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        corpus.load(str(tmp_path))


def test_empty_path_is_a_user_error():
    with pytest.raises(UserError, match="corpus path is empty"):
        corpus.load("")


@pytest.mark.parametrize("content", ["", "\n\n   \n", "\r\n"])
def test_empty_txt_is_a_user_error(tmp_path, content):
    with pytest.raises(UserError, match="contains no sentences"):
        corpus.load(write(tmp_path, "empty.txt", content))


def test_jsonl_with_only_empty_texts_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="contains no sentences"):
        corpus.load(write(tmp_path, "empty.jsonl", '{"text": ""}\n'))


@pytest.mark.parametrize("name", ["s.csv", "s.json", "sentences"])
def test_unknown_extension_is_a_user_error(tmp_path, name):
    path = write(tmp_path, name, "A sentence.\n")
    with pytest.raises(UserError, match=r"use \.txt .* or \.jsonl"):
        corpus.load(path)


def test_unreadable_file_is_a_user_error(tmp_path, monkeypatch):
    path = write(tmp_path, "locked.txt", "secret\n")

    def refuse(self):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    with pytest.raises(UserError, match="cannot read corpus file .*locked.txt: Permission denied"):
        corpus.load(path)


def test_split_other_than_search_with_a_file_is_a_user_error(tmp_path):
    path = write(tmp_path, "s.txt", "A sentence.\n")
    with pytest.raises(UserError, match="only to the built-in corpus"):
        corpus.load(path, split="validation")


def test_corpus_md_states_the_current_sizes_and_fingerprints():
    doc = (pathlib.Path(corpus.__file__).parent / "data" / "CORPUS.md").read_text(encoding="utf-8")
    for split, size in corpus.sizes().items():
        row = f"| `{split}` | {size} |"
        assert row in doc, row
        assert f"`{corpus.load(split=split).fingerprint}`" in doc, split
