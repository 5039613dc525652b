"""The linguistic annotations of an attention set: parsed once (`evo.parsing`), kept in a file beside it.

The file names the pipeline and its version (`ensure`), since annotations differ between
versions; `preload` hands a process the stored annotations so that programs never parse.
"""

from __future__ import annotations

import json
import pathlib
import re

from evo import files
from evo.parsing import (CLAUSE_DEPS, INSTALL, PIPELINES, annotate, available, describe,  # noqa: F401
                         for_sentences, installed, pipeline)
from evo.prelude import annotation as store
from evo.prelude import linguistic as prelude_linguistic

_USES = re.compile(r"\b(" + "|".join(prelude_linguistic.__all__) + r")\b")


def uses(source: str) -> bool:
    """Returns whether a program's source names one of the linguistic helpers."""
    return bool(_USES.search(source))


def file_for(aset_dir: pathlib.Path) -> pathlib.Path | None:
    """Returns the annotation file beside an attention set for the installed pipeline (None: no pipeline)."""
    found = installed()
    if found is None:
        return None
    return pathlib.Path(aset_dir) / f"linguistic-{found[0]}-{found[1]}.json"


def ensure(aset) -> pathlib.Path:
    """Returns the attention set's annotation file, writing it (every sentence parsed once) if missing."""
    path = file_for(aset.path)
    if path is None:
        pipeline()  # raises the one-line reason
    if not path.exists():
        annotations = for_sentences([list(t) for t in aset.tokens])
        files.write_json(path, {**describe(), "tokens": [list(t) for t in aset.tokens],
                                "sentences": [a.to_json() for a in annotations]})
    return path


def preload(aset_dir: pathlib.Path, token_lists: list[list[str]] | None = None) -> bool:
    """Hands this process the installed pipeline's annotations stored beside an attention set, if any.

    `token_lists` are the set's sentences (default: those the file records).
    """
    path = file_for(aset_dir)
    if path is None or not path.exists():
        return False
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        annotations = [store.Annotation.from_json(d) for d in doc["sentences"]]
        token_lists = doc["tokens"] if token_lists is None else token_lists
    except (OSError, ValueError, KeyError, TypeError):
        return False  # a partial file: the sentences are parsed again where needed
    if len(annotations) != len(token_lists):
        return False
    for tokens, a in zip(token_lists, annotations):
        store.provide(tokens, a)
    return True
