"""Measuring explanations on text: per head its shares, family and account, and its best fit's attribution.

    text      the first `sentences` sentences of the run's attention set (the heads' own matrices)
    head      shares of every head at once (one pass over the set), word-class selectivity, family
    readable  each distinct program runs once in the sandbox on the same sentences (however
              many heads pick it); its shares sit beside the head's in the account
    content   where the set's affinities are kept (evo.affinity), each head's share off the first
              token on the key its affinity ranks first, and the readable program's on the same keys
    best fit  for a best pick that is not the readable one: the program with each family of its
              terms dropped runs in the sandbox; the IoU the head loses is the attribution
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from evo import evaluate, fitness
from evo.explanation import accounts, attribution, families, shares

SENTENCES = 64   # sentences of the attention set accounts are measured on


@dataclasses.dataclass(frozen=True)
class Explained:
    """One head's measured explanation."""

    family: str
    shares: dict          # accounts.records: the text and, per named pattern, head and program shares
    account: str          # the readable pick's account in words
    attribution: dict     # term family -> IoU the best fit loses without it (empty: none measured)
    attribution_words: str


def unmeasured(account: str) -> Explained:
    """Returns the explanation of a head whose attention set is not at hand: the program's own account."""
    return Explained("unmeasured", {"text": None, "patterns": []}, account, {}, "")


def text_of(aset_path: pathlib.Path, sentences: int = SENTENCES):
    """Returns (shares.Text, the heads' matrices per sentence) for an attention set's first sentences."""
    from evo import affinity, attention_set, linguistic

    aset = attention_set.AttentionSet.load(aset_path)
    count = min(sentences, len(aset))
    tokens = [list(aset.tokens[s]) for s in range(count)]
    ling = linguistic.available() and linguistic.preload(pathlib.Path(aset_path), [list(t) for t in aset.tokens])
    affinity.preload(pathlib.Path(aset_path))   # programs with the content term read the set's, not the model
    corpus = aset.meta.get("corpus") or {}
    source = corpus.get("source") if isinstance(corpus, dict) else corpus
    text = shares.Text.of(tokens, aset.causal, bool(ling),
                          f"{source or aset_path}, first {count} of {len(aset)} sentences",
                          affinity.stored(aset, count))
    return text, [aset.matrices(s).astype(np.float64) for s in range(count)]


def explain(aset_path, readable: list[str], best: list[str], sources: dict[str, str],
            sentences: int = SENTENCES) -> list[Explained]:
    """Returns each head's explanation: `readable[k]` and `best[k]` are head k's picks (program ids)."""
    text, mats = text_of(pathlib.Path(aset_path), sentences)
    head_shares = shares.of(text, mats)                      # (K, P)
    word = shares.classes(text, mats)
    favoured = shares.content(text, mats)                    # ((K,), (K,)) or None
    fams = families.all_of(head_shares, word, favoured)
    run = _Outputs(text)
    program_shares = {pid: run.shares(sources[pid]) for pid in dict.fromkeys(readable)}
    out = []
    for k, (r, b) in enumerate(zip(readable, best)):
        wc = None if word is None else (word[0][k], word[1])
        mine = program_shares[r]
        content = None if favoured is None else (favoured[0][k], run.content(sources[r], k), favoured[1][k])
        lost = _attribution(run, [m[k] for m in mats], sources[b]) if b != r else {}
        out.append(Explained(fams[k], accounts.records(head_shares[k], mine, text.source, content),
                             accounts.words(head_shares[k], mine, wc, content), lost,
                             attribution.words(lost) if lost else ""))
    return out


class _Outputs:
    """Each program's normalised outputs on the text, run once in the sandbox however many heads ask."""

    def __init__(self, text: shares.Text):
        self.text, self._cache = text, {}

    def of(self, source: str) -> list[np.ndarray] | None:
        """Returns the program's (n, n) outputs per sentence, or None when it fails on the text."""
        if source not in self._cache:
            self._cache[source] = evaluate.outputs(source, self.text.tokens, self.text.causal)[0]
        return self._cache[source]

    def shares(self, source: str) -> np.ndarray | None:
        """Returns the program's shares (P,) on the text, or None when it fails there."""
        outs = self.of(source)
        return None if outs is None else shares.of(self.text, outs)[0]

    def content(self, source: str, head: int) -> float | None:
        """Returns the program's share off the first token on the keys head `head`'s affinity favours."""
        outs = self.of(source)
        found = None if outs is None else shares.content(self.text, outs, [head])
        return None if found is None else float(found[0][0])


def _attribution(run: _Outputs, head: list[np.ndarray], source: str) -> dict[str, float]:
    """Returns per term family of the program the IoU the head loses when it is dropped."""
    whole = _iou(run, head, source)
    if whole is None:
        return {}
    lost = {}
    for family, variant in attribution.variants(source).items():
        score = _iou(run, head, variant)
        if score is not None:
            lost[family] = round(max(whole - score, 0.0), 4)
    return lost


def _iou(run: _Outputs, head: list[np.ndarray], source: str) -> float | None:
    outs = run.of(source)
    if outs is None:
        return None
    return float(np.mean([fitness.iou_rows(h, o).mean() for h, o in zip(head, outs)]))
