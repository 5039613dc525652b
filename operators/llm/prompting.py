"""Prompt building: the contract, the prelude, what the head does, and where a program fails."""

from __future__ import annotations

import dataclasses
import inspect
import json
import pathlib
import string

import numpy as np

from evo.errors import UserError

PROMPTS_DIR = pathlib.Path(__file__).parent / "prompts"
FIELDS = {
    "system": {"contract", "prelude"},
    "contract": set(),
    "rewrite": {"target", "head_view", "parent", "parent_iou", "parent_length", "failures"},
    "edit": {"target", "head_view", "parent", "parent_iou", "parent_length", "failures", "example_line"},
    "crossover": {"target", "head_view", "a_source", "a_iou", "a_length",
                  "b_source", "b_iou", "b_length", "comparison"},
    "term": {"target", "head_view", "parent", "parent_iou", "failures"},   # one score term (operators.llm.term)
}


def load_templates(prompts_dir: str | pathlib.Path | None = None) -> dict[str, string.Template]:
    """Returns every template, a file in `prompts_dir` replacing the built-in one of its name."""
    override = pathlib.Path(prompts_dir) if prompts_dir else None
    if override is not None and not override.is_dir():
        raise UserError(f"--prompts-dir {override} is not a directory")
    templates = {}
    for name, fields in FIELDS.items():
        path = PROMPTS_DIR / f"{name}.txt"
        if override is not None and (override / f"{name}.txt").is_file():
            path = override / f"{name}.txt"
        template = string.Template(path.read_text(encoding="utf-8"))
        if not template.is_valid():
            raise UserError(f"prompt template {path} has a stray '$' (write '$$' for a literal dollar)")
        unknown = set(template.get_identifiers()) - fields
        if unknown:
            raise UserError(f"prompt template {path} uses unknown field(s) {sorted(unknown)}; "
                            f"allowed: {sorted(fields)}")
        templates[name] = template
    return templates


LINGUISTIC_DOC = [
    "- What a token's word is (spaCy; pieces of a word share its annotations; specials have none):",
    "  `pos_of(tokens, i)` its part of speech (NOUN, VERB, DET, ADJ, ADP, PRON, AUX, PUNCT, ...), "
    "`dep_of(tokens, i)` its relation to its head (nsubj, det, amod, ...), `word_of(tokens, i)`, "
    "`entity_of(tokens, i)`; `is_noun`, `is_verb`, `is_adj`, `is_adv`, `is_det`, `is_pron`, `is_adp`, "
    "`is_propn`, `is_num`, `is_conj` `(tokens, i) -> bool`",
    "- How words relate: `head_of(tokens, i)` the first token of i's head word (-1 root), "
    "`is_head_of(tokens, i, j)`, `same_chunk(tokens, i, j)`, `same_clause(tokens, i, j)`; matrices "
    "`head_matrix(tokens)` (1 where key j is in query i's head word), `pos_matrix(tokens, kinds)` (n,), "
    "`pos_pair(tokens, query_pos, key_pos)`, `query_is`/`key_is(tokens, pos)`, `key_dep(tokens, rel)`; "
    "patterns `chunk_matrix`, `clause_matrix`, `sibling_matrix`, `grandparent_matrix`, `dependent_matrix`, "
    "`nouns`, `verbs`, `previous_noun`, `previous_verb` `(tokens)` (n, n)",
]
SCORES_DOC = "- Score terms to weight and add inside `softmax_rows`: `steps_back(tokens, d)`, `log_distance(tokens)`, " \
    "`sink_later(tokens)` (n, n); `key_weight(tokens, {\" the\": 1.2, \",\": -0.8})` scores each key by its " \
    "own token, `key_after(tokens, {...})` by the token before it; `query_is(tokens, \"NOUN\") * (1.4 * key_is(tokens, \"DET\") + ...)` scores " \
    "what one kind of query word looks at; `query_weight(tokens, {\",\": 1.5}) * sink(tokens)` which queries lean on a pattern; " \
    "`affinity(tokens, \"gemma-3-270m\", 0, 3)` the head's own score on the tokens' identities alone, " \
    "`affinity_at_distance(tokens, \"gemma-3-270m\", 0, 3)` the same at each pair's distance apart (a rotary model's), " \
    "`affinity_in_context(tokens, \"gemma-3-270m\", 6, 2, 1)` with each token read beside the 1 to 3 tokens before it " \
    "(the model, layer, head and context written as constants)"


def prelude_doc() -> str:
    """Returns the helper prelude's documentation: how to use it and one line per helper."""
    from evo import prelude
    lines = ["## Helper prelude",
             "These helpers are available in every program without an import "
             "(`from evo.prelude import name` also works):"]
    from evo import linguistic

    public = getattr(prelude, "__all__", None) or [n for n in vars(prelude) if not n.startswith("_")]
    public = [n for n in public if n not in prelude.LINGUISTIC and n not in prelude.SCORE_TERMS]
    for name in public:
        obj = getattr(prelude, name)
        if not inspect.isfunction(obj) or not obj.__module__.startswith(prelude.__name__):
            continue
        doc = inspect.getdoc(obj) or ""
        signature = str(inspect.signature(obj)).replace("'", "")
        lines.append(f"- `{name}{signature}`: {doc.splitlines()[0] if doc else ''}".rstrip(": "))
    lines.append(SCORES_DOC)
    if linguistic.available():  # the LLM is shown only helpers this machine can run
        lines += LINGUISTIC_DOC
    return "\n".join(lines)


def tok(token: str) -> str:
    """Returns a token quoted so that leading spaces and specials are visible."""
    return json.dumps(token, ensure_ascii=False)


def top_triples(a: np.ndarray, frac: float = 0.1, per_row: int = 4) -> list[list[tuple[int, float]]]:
    """Returns per query row the (key, weight) pairs among the top `frac` of all entries, best first.

    Every row keeps at least its largest entry and at most `per_row` keys.
    """
    n = a.shape[0]
    flat = np.sort(a.ravel())[::-1]
    cut = flat[max(int(np.ceil(frac * a.size)) - 1, 0)]
    rows = []
    for i in range(n):
        order = np.argsort(-a[i], kind="stable")[:per_row]
        keep = [(int(j), float(a[i, j])) for j in order if a[i, j] >= cut and a[i, j] > 0]
        rows.append(keep or [(int(order[0]), float(a[i, order[0]]))])
    return rows


def row_text(tokens: list[str], pairs: list[tuple[int, float]]) -> str:
    """Returns "4 " cat" .62, 0 "<bos>" .30" for a row's (key, weight) pairs."""
    return ", ".join(f"{j} {tok(tokens[j])} {_weight(w)}" for j, w in pairs)


def _weight(w: float) -> str:
    """Returns a weight in two decimals without the leading zero: ".62", "1.00"."""
    text = f"{w:.2f}"
    return text[1:] if text.startswith("0.") else text


def head_view(tokens: list[str], a: np.ndarray, max_queries: int = 32) -> str:
    """Returns one sentence of a head's attention: its tokens, then each query's top keys."""
    rows = top_triples(a)
    lines = ["tokens: " + " ".join(f"{i}:{tok(t)}" for i, t in enumerate(tokens))]
    for i in range(min(len(tokens), max_queries)):
        lines.append(f"  {i} {tok(tokens[i])} -> {row_text(tokens, rows[i])}")
    if len(tokens) > max_queries:
        lines.append(f"  ... ({len(tokens) - max_queries} more queries)")
    return "\n".join(lines)


def worst_rows(tokens: list[str], a: np.ndarray, p: np.ndarray, rows_iou: np.ndarray,
               count: int = 4) -> str:
    """Returns the `count` lowest-IoU rows: what the head did there and what the program did."""
    head_rows, prog_rows = top_triples(a), top_triples(p)
    lines = []
    for i in [i for i in np.argsort(rows_iou, kind="stable") if rows_iou[i] < 0.99][:count]:
        lines.append(f"  row {i} {tok(tokens[i])} (row IoU {rows_iou[i]:.2f})\n"
                     f"    head:    {row_text(tokens, head_rows[i])}\n"
                     f"    program: {row_text(tokens, prog_rows[i])}")
    return "\n".join(lines) or "  (every row fits)"


@dataclasses.dataclass(frozen=True)
class PromptConfig:
    probe_sentences: int = 12     # sentences the parent is run on to find where it fails
    show_sentences: int = 2       # sentences whose attention is shown in full
    worst_sentences: int = 2      # failing sentences shown row by row
    worst_rows: int = 4           # rows shown per failing sentence
    max_queries: int = 32         # query rows shown per sentence
    program_seconds: float = 2.0  # sandbox limit per sentence when running a parent


class Probe:
    """A fixed sample of an attention set's sentences, and parents run on it in the sandbox."""

    def __init__(self, aset, config: PromptConfig = PromptConfig()):
        self.config = config
        self.causal = aset.causal
        self.n_heads = aset.n_heads
        count = min(config.probe_sentences, len(aset))
        self.indices = [int(i) for i in np.linspace(0, len(aset) - 1, count).round()] if count else []
        self.tokens = [aset.tokens[i] for i in self.indices]
        self._matrices = [aset.matrices(i) for i in self.indices]   # each (K, n, n) float32

    def head(self, k: int) -> list[np.ndarray]:
        """Returns head k's attention on the probe sentences, one (n, n) each."""
        return [m[k].astype(np.float64) for m in self._matrices]

    def outputs(self, source: str) -> tuple[list[np.ndarray] | None, str | None]:
        """Returns the program's normalised outputs on the probe sentences, or its error."""
        from evo import fitness, sandbox
        outcome = sandbox.run(source, self.tokens, sandbox.Limits(seconds=self.config.program_seconds))
        if not outcome.ok:
            return None, outcome.error
        try:
            return [fitness.normalise(raw, len(t), self.causal) for raw, t in zip(outcome.matrices, self.tokens)], None
        except ValueError as err:
            return None, str(err)

    def head_label(self, k: int) -> str:
        """Returns "layer L head H" for head index k."""
        return f"layer {k // self.n_heads} head {k % self.n_heads}"


def target_text(probe: Probe, k: int, heads: tuple[int, ...], parents) -> str:
    """Returns the target head, and the other heads of the request with the parents' IoU there."""
    lines = [f"Attention {probe.head_label(k)} of the model ({'causal' if probe.causal else 'bidirectional'})."]
    others = [h for h in heads if h != k][:7]
    if others:
        fits = "; ".join(f"{probe.head_label(h)}: " + "/".join(f"{p.iou[h]:.2f}" for p in parents) for h in others)
        lines.append(f"The program should also fit these similar heads (current IoU {fits}).")
    return "\n".join(lines)


def sentence_ious(head: list[np.ndarray], outputs: list[np.ndarray]) -> list[np.ndarray]:
    """Returns per probe sentence the row IoUs of a program against the head."""
    from evo import fitness
    return [fitness.iou_rows(a, p) for a, p in zip(head, outputs)]


def views_text(probe: Probe, head: list[np.ndarray], picks: list[int]) -> str:
    """Returns the head's attention on the chosen probe sentences."""
    return "\n\n".join(f"Sentence {probe.indices[s]}:\n" + head_view(probe.tokens[s], head[s], probe.config.max_queries)
                       for s in picks)


def failures_text(probe: Probe, head: list[np.ndarray], outputs, error: str | None, rows) -> str:
    """Returns the parent's worst sentences on the head, row by row, or why it could not run."""
    if outputs is None:
        return f"The program failed when run on the sample sentences: {error}"
    means = [r.mean() for r in rows]
    parts = []
    for s in np.argsort(means, kind="stable")[:probe.config.worst_sentences]:
        parts.append(f"Sentence {probe.indices[s]} (IoU {means[s]:.2f}):\n"
                     + worst_rows(probe.tokens[s], head[s], outputs[s], rows[s], probe.config.worst_rows))
    return "\n\n".join(parts)


def _picks(rng: np.random.Generator, count: int, n: int, worst: list[int]) -> list[int]:
    """Returns sentences to show among `n`: the worst first, then random others, `count` in all."""
    picks = list(worst[:1])
    rest = [s for s in rng.permutation(n) if s not in picks]
    return picks + [int(s) for s in rest[:max(count - len(picks), 0)]]


def mutation_messages(templates, system: str, probe: Probe, request, form: str,
                      rng: np.random.Generator) -> list[dict]:
    """Returns the chat messages asking for a rewrite or an edit of the request's parent."""
    parent = request.parents[0]
    k = int(rng.choice(request.heads))
    head = probe.head(k)
    outputs, error = probe.outputs(parent.source)
    rows = sentence_ious(head, outputs) if outputs is not None else None
    order = [int(s) for s in np.argsort([r.mean() for r in rows], kind="stable")] if rows else list(range(len(head)))
    user = templates[form].substitute(
        target=target_text(probe, k, request.heads, request.parents),
        head_view=views_text(probe, head, _picks(rng, probe.config.show_sentences, len(head), order)),
        parent=parent.source.rstrip(), parent_iou=f"{parent.iou[k]:.3f}", parent_length=parent.length,
        failures=failures_text(probe, head, outputs, error, rows), example_line=_example_line(parent.source))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _example_line(source: str) -> str:
    """Returns a line of the program to show an edit block with: its last `return`, else its last line."""
    lines = [line for line in source.rstrip().split("\n") if line.strip()]
    returns = [line for line in lines if line.strip().startswith("return ")]
    return (returns or lines or ["    return out"])[-1]


def comparison_text(probe: Probe, head, out_a, out_b, err_a, err_b) -> str:
    """Returns the sentences where A beats B most and where B beats A most, row by row."""
    if out_a is None or out_b is None:
        return "\n".join(f"Program {n} failed on the sample sentences: {e}" for n, e in (("A", err_a), ("B", err_b)) if e)
    rows_a, rows_b = sentence_ious(head, out_a), sentence_ious(head, out_b)
    gain = np.array([ra.mean() - rb.mean() for ra, rb in zip(rows_a, rows_b)])
    parts = []
    for name, s, own, mine, other in (("A", int(np.argmax(gain)), out_a, rows_a, rows_b),
                                      ("B", int(np.argmin(gain)), out_b, rows_b, rows_a)):
        diff = mine[s] - other[s]
        best = np.argsort(-diff, kind="stable")[:probe.config.worst_rows]
        lines = [f"Sentence {probe.indices[s]}: {name} scores {mine[s].mean():.2f}, the other {other[s].mean():.2f}."]
        for i in best:
            lines.append(f"  row {i} {tok(probe.tokens[s][i])}: head {row_text(probe.tokens[s], top_triples(head[s])[i])}"
                         f" | {name} {row_text(probe.tokens[s], top_triples(own[s])[i])}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def crossover_messages(templates, system: str, probe: Probe, request, rng: np.random.Generator) -> list[dict]:
    """Returns the chat messages asking for one program that combines the request's two parents."""
    a, b = request.parents
    k = int(rng.choice(request.heads))
    head = probe.head(k)
    (out_a, err_a), (out_b, err_b) = probe.outputs(a.source), probe.outputs(b.source)
    user = templates["crossover"].substitute(
        target=target_text(probe, k, request.heads, request.parents),
        head_view=views_text(probe, head, _picks(rng, probe.config.show_sentences, len(head), [])),
        a_source=a.source.rstrip(), a_iou=f"{a.iou[k]:.3f}", a_length=a.length,
        b_source=b.source.rstrip(), b_iou=f"{b.iou[k]:.3f}", b_length=b.length,
        comparison=comparison_text(probe, head, out_a, out_b, err_a, err_b))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def system_message(templates) -> str:
    """Returns the system message: the contract and the prelude's documentation."""
    return templates["system"].substitute(contract=templates["contract"].template.strip(), prelude=prelude_doc())

