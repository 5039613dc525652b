"""Offline symbolic operators: AST mutations, mixes, crossovers and weight fitting, no LLM.

Every child is readable Python that meets the program contract. For each request the
operator draws an edit from `np.random.default_rng(request.seed)`, weighted by the
request's kind; an edit that does not apply, or whose child is invalid, too long or the
same as its parent, is dropped and another drawn, so results depend on the request alone.
"""

import dataclasses
import pathlib

import numpy as np

from evo import program
from evo.errors import UserError
from operators.shared import ast_edits, canonical, mixing
from operators import base
from operators.fitting import fit, fit_edits
from operators.edits import mutations
from operators.shared.ast_edits import NotApplicable

# Relative chances of each edit by request kind; the fit edits need an attention set.
MUTATE_WEIGHTS = {
    "change_constant": 1.0, "shift_offset": 1.0, "swap_predicate": 0.75, "flip_comparison": 0.5,
    "sharpen": 0.5, "add_sink": 1.0, "mix_pattern": 1.0, "drop_term": 0.5, "fit_weight": 3.0,
    "fit_basis": 5.0, "fit_scratch": 4.0, "fit_prune": 6.25, "fit_scored": 6.0, "fit_wide": 20.0,
    "fit_sparse": 4.0, "invent_term": 10.0, "fit_within": 5.0,
}
CROSSOVER_WEIGHTS = {"mix": 2.0, "splice_condition": 1.5, "swap_helper": 1.0, "fit_mix": 6.0, "fit_scored": 3.0,
                     "fit_wide": 6.0}
FIT_EDITS = ("fit_weight", "fit_mix", "fit_basis", "fit_scratch", "fit_prune", "fit_scored", "fit_wide", "fit_sparse",
             "invent_term", "fit_within")
FIRST_EDITS = {0: "fit_wide", 1: "fit_sparse"}   # a head's first requests, by visits (table_first)
_POINT_EDITS = {
    "change_constant": mutations.change_constant, "shift_offset": mutations.shift_offset,
    "swap_predicate": mutations.swap_predicate, "flip_comparison": mutations.flip_comparison,
}
_SPLICES = {"splice_condition": mutations.splice_condition, "swap_helper": mutations.swap_helper}


@dataclasses.dataclass(frozen=True)
class Settings:
    max_length: int = 1500        # AST nodes a child may have (evo.program.length; a 120-term scored program has ~1100)
    max_terms: int = 5            # parts a mix may have
    scored_terms: int = 12        # score terms a scored program may have (operators.fitting.scored)
    wide_terms: int = 120         # score terms a wide scored program (fit_wide) may have
    wide_sentences: int = 220     # sentences a wide fit is fitted on (its many weights need more than fit_sentences)
    fit_sentences: int = 32       # sentences of the attention set the fit edits score on
    max_tries: int = 8            # edits tried per request before giving up
    min_gain: float = 0.003       # IoU a basis term must add to the fitted mix to be kept
    prune_loss: float = 0.0095    # IoU fit_prune may give up, in all, to drop terms (the simplest pick allows 0.01)
    table_first: bool = True      # a head's first request tries fit_wide first, its second fit_sparse: no head
                                  # goes a search without its table and its short program
    sparse_terms: int = 4         # score terms a sparse fit (fit_sparse) may have
    sparse_nodes: int = 60        # AST nodes a sparse fit's program may have (the readable pick's limit)
    within_nodes: int = 200       # AST nodes fit_within cuts a head's table down to (or a half, three quarters)
    invent: bool = True           # fit_wide also weighs a term invented for its head (operators.fitting.invent)
    library: bool = True          # invent_term grows the run's term library (operators.fitting.term_edits);
                                  # runs made before term libraries resume without it
    linguistic: bool = False      # fit_scored may use the linguistic score terms (the run's vocabulary has them)
    affinity: bool = False        # the table, scored and sparse fits may weigh the head's affinity between tokens
                                  # read alone (evo.affinity); runs made before it resume without
    at_distance: bool = False     # ... at each pair's distance apart, where the model is rotary (evo.affinity.rotary);
                                  # runs made before it resume with the tokens alone
    context: bool = False         # ... grown a step at a time, each token read beside more before it
                                  # (evo.affinity.context); runs made before it resume without
    mutate_weights: dict = dataclasses.field(default_factory=lambda: dict(MUTATE_WEIGHTS))
    crossover_weights: dict = dataclasses.field(default_factory=lambda: dict(CROSSOVER_WEIGHTS))

    def __post_init__(self):
        for table, known in ((self.mutate_weights, MUTATE_WEIGHTS), (self.crossover_weights, CROSSOVER_WEIGHTS)):
            unknown = sorted(set(table) - set(known))
            if unknown:
                raise UserError(f"unknown symbolic edit(s) {unknown}; known: {sorted(known)}")
            if any(not isinstance(v, (int, float)) or v < 0 for v in table.values()):
                raise UserError("symbolic edit weights must be non-negative numbers")
        if not 0 <= self.min_gain < 1:
            raise UserError(f"symbolic setting min_gain must be in [0, 1), got {self.min_gain}")
        for name in ("max_length", "max_terms", "scored_terms", "wide_terms", "wide_sentences", "fit_sentences",
                     "max_tries", "sparse_terms", "sparse_nodes",
                     "within_nodes"):
            if getattr(self, name) < 1:
                raise UserError(f"symbolic setting {name} must be at least 1, got {getattr(self, name)}")


class SymbolicOperator(fit_edits.FitEdits, base.Operator):
    """The offline operator: one child per request, deterministic in the request's seed."""

    name = "symbolic"

    def __init__(self, settings: Settings = Settings(), aset_path: pathlib.Path | None = None,
                 causal: bool = True, limits=None, pool=None):
        self.settings = settings
        self.causal = causal
        self.limits = limits
        self.aset_path = str(aset_path) if aset_path else None
        self.fitter = fit.Fitter(aset_path, settings.fit_sentences, limits) if aset_path else None
        self.pool = pool   # an evo.parallel.Pool: requests are varied on its workers
        self.counts: dict[str, int] = {}
        self.failures = 0

    def vary(self, requests: list[base.Request]) -> list[base.Child]:
        """Returns one child per request, in order (made on the pool's workers when there is one)."""
        if self.pool is None or self.pool.local:
            with program.AST_LOCK:   # here, in this thread: LLM threads may be parsing too (mixed)
                children = [self._child(r) for r in requests]
        else:
            from evo import evaluate
            spec = (self.settings, self.aset_path, self.causal, self.limits)
            chunks = evaluate.batches(len(requests), self.pool.size)
            made = self.pool.starmap(_vary_batch, [(spec, self.terms, [requests[i] for i in r]) for r in chunks])
            children = [c for batch in made for c in batch]
        for child in children:
            if child.source is None:
                self.failures += 1
            else:
                label = child.operator.removeprefix("symbolic.")
                self.counts[label] = self.counts.get(label, 0) + 1
        return children

    def stats(self) -> dict:
        """Returns how often each edit produced a child, and how many requests got none."""
        return {"children": dict(sorted(self.counts.items())), "failed": self.failures}

    def state_dict(self) -> dict:
        """Returns the counters, for the checkpoint."""
        return {"counts": dict(self.counts), "failures": self.failures}

    def load_state_dict(self, state: dict) -> None:
        """Restores the counters from a checkpoint."""
        self.counts = {str(k): int(v) for k, v in state.get("counts", {}).items()}
        self.failures = int(state.get("failures", 0))

    def _child(self, request: base.Request) -> base.Child:
        """Returns a child from the first edit drawn that applies and yields a valid, new program."""
        rng = np.random.default_rng(request.seed)
        table = dict(self.settings.mutate_weights if request.kind == "mutate" else self.settings.crossover_weights)
        if self.fitter is None:
            table = {k: v for k, v in table.items() if k not in FIT_EDITS}
        if not self.settings.library:
            table.pop("invent_term", None)
        ids = tuple(p.id for p in request.parents)
        reasons = []
        first = FIRST_EDITS.get(request.visits) if self.settings.table_first else None
        for _ in range(self.settings.max_tries):
            names = [k for k, v in table.items() if v > 0]
            if not names:
                break
            weights = np.array([table[k] for k in names], dtype=np.float64)
            edit = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            if table.get(first, 0) > 0:
                edit = first   # the draw above is still made: the request's later edits do not move
            first = None
            try:
                source, meta = self._apply(edit, request, rng)
                source = canonical.canonical(source, self.causal)
                self._validate(source, request)
            except NotApplicable as err:
                reasons.append(f"{edit}: {err}")
                table.pop(edit)
                continue
            label = meta.pop("label", edit)
            return base.Child(source, ids, f"symbolic.{label}", None, meta)
        return base.Child(None, ids, "symbolic", "; ".join(reasons) or "no symbolic edit enabled")

    def _apply(self, edit: str, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        """Returns the child's source and its meta for one named edit."""
        sources = [p.source for p in request.parents]
        if edit in _POINT_EDITS:
            tree = ast_edits.parse(sources[0])
            note = _POINT_EDITS[edit](tree, rng)
            return _without_stale_docstrings(tree, sources), {"edit": note}
        if edit in _SPLICES:
            tree, donor = ast_edits.parse(sources[0]), ast_edits.parse(sources[1])
            if rng.random() < 0.5:
                tree, donor = donor, tree
            note = _SPLICES[edit](tree, donor, rng)
            return _without_stale_docstrings(tree, sources), {"edit": note}
        return getattr(self, f"_{edit}")(request, rng)

    def _sharpen(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        mix = mixing.read(request.parents[0].source, self.causal)
        term = mix.terms[int(rng.integers(len(mix.terms)))]
        factor = float(rng.choice([0.5, 2.0, 3.0]))
        old, term.power = term.power, float(f"{term.power * factor:.3g}")
        label = "sharpen" if factor > 1 else "flatten"
        return canonical.write(mix, self.causal), {"label": label, "edit": f"{term.func} power {old} -> {term.power}"}

    def _add_sink(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        return self._with_pattern(request, rng, "sink", "add_sink")

    def _mix_pattern(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        pattern = str(rng.choice(["previous_token", "self_token", "uniform"]))
        return self._with_pattern(request, rng, pattern, "mix_pattern")

    def _with_pattern(self, request, rng, pattern: str, label: str) -> tuple[str, dict]:
        mix = mixing.read(request.parents[0].source, self.causal)
        w = float(rng.choice([0.05, 0.1, 0.2, 0.3]))
        mix = mixing.with_pattern(mix, pattern, w)
        self._check_terms(mix)
        return canonical.write(mix, self.causal), {"label": label, "edit": f"{w} * {pattern}"}

    def _drop_term(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        mix = mixing.read(request.parents[0].source, self.causal)
        if len(mix.terms) < 2:
            raise NotApplicable("the parent is not a mix of two or more parts")
        gone = mix.terms.pop(int(rng.integers(len(mix.terms))))
        return canonical.write(mix, self.causal), {"edit": f"dropped {gone.func}"}

    def _mix(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        a, b = (mixing.read(p.source, self.causal) for p in request.parents)
        w = float(rng.choice([0.3, 0.5, 0.7]))
        mix = mixing.merge(a, b, w)
        self._check_terms(mix)
        return canonical.write(mix, self.causal), {"edit": f"{w} * first + {1 - w:.1f} * second"}

    def _check_terms(self, mix: mixing.Mix) -> None:
        if len(mixing.combined(mix.terms)) > self.settings.max_terms:
            raise NotApplicable(f"the child would mix more than {self.settings.max_terms} parts")

    def _validate(self, source: str, request: base.Request) -> None:
        """Raises NotApplicable unless the child meets the program contract, fits the cap and is new."""
        from evo import sandbox
        problem = sandbox.check(source)
        if problem:
            raise NotApplicable(f"child fails the static check: {problem}")
        size = program.length(source)
        if size > self.settings.max_length:
            raise NotApplicable(f"child would have {size} AST nodes, over the cap of {self.settings.max_length}")
        if program.normalise(source) in {program.normalise(p.source) for p in request.parents}:
            raise NotApplicable("child is the same as a parent")


_WORKER: list = []   # in a worker process: [(spec, operator)], the operator last built there


def _vary_batch(spec: tuple, terms: tuple, requests: list[base.Request]) -> list[base.Child]:
    """Returns the children of a batch of requests (runs in a worker; the operator is built once per process
    and told the run's library each batch)."""
    if not _WORKER or _WORKER[0][0] != spec:
        settings, aset_path, causal, limits = spec
        _WORKER[:] = [(spec, SymbolicOperator(settings, aset_path, causal, limits))]
    _WORKER[0][1].library(terms)
    return [_WORKER[0][1]._child(r) for r in requests]


def _without_stale_docstrings(tree, parents: list[str]) -> str:
    """Returns the edited program's source with the docstrings dropped that no longer describe their code.

    A function (or the module) whose code differs from every parent's function of that name
    loses its docstring, so an account never repeats a claim the edit made untrue.
    """
    import ast
    before = {}
    for source in parents:
        for node in ast_edits.parse(source).body:
            if isinstance(node, ast.FunctionDef):
                before.setdefault(node.name, set()).add(mixing.anonymous(node))
    changed = False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and mixing.anonymous(node) not in before.get(node.name, set()):
            node.body = ast_edits.docstring_free(node.body) or [ast.Pass()]
            changed = True
    if changed:
        tree.body = ast_edits.docstring_free(tree.body)
    return ast_edits.unparse(tree)
