"""The offline operator's edits of scored programs (operators.fitting.scored): fit, grow and prune them.

    fit_wide     a scored program of many terms chosen at once (up to `wide_terms`): a head's table
                 of what each kind of query word looks at, with a term invented for the head
                 (operators.fitting.invent: which key tokens it favours)
    fit_scored   a row softmax of a few score terms fitted to the head; scored parents' terms
                 (both, in a crossover) are refitted and grow by one to three terms
    fit_prune    on a scored parent: drop the score terms the head can do without
    invent_term  a new term for the head's library (operators.fitting.term_edits)
    fit_sparse   the best scored program of at most `sparse_terms` terms and `sparse_nodes` AST nodes
                 (operators.fitting.sparse): the readable end of a front, made on purpose
    fit_within   the head's wide table cut down to a node budget (up to `within_nodes`; sparse.cut):
                 the short programs between a few terms and the whole table

A mixin of the symbolic operator, beside operators.fitting.fit_edits and operators.fitting.term_edits (whose
`_library_problem` puts the run's invented terms in every fit; needs `settings`, `fitter`, `causal`).
"""

import numpy as np

from operators import base
from operators.shared import canonical, score_terms
from operators.fitting import fit, invent, scored, scored_text, sparse
from operators.shared.ast_edits import NotApplicable


class ScoredEdits:
    """Fitting, growing and pruning scored programs."""

    def _fit_scored(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        """Fits a scored program (softmax of a few terms) to the head: scored parents' terms (both, in a
        crossover) are refitted and grow by 1-3 terms; otherwise it starts afresh. New terms come from
        a random 80 % of the vocabulary."""
        problem = self._own_terms(self._scored_problem(), self.fitter.sample, request)
        most = self.settings.scored_terms
        start = self._parent_terms(request, problem)[:most - 1]
        terms = min(most, len(start) + int(rng.integers(1, 4))) if start else int(rng.integers(2, most + 1))
        allowed = rng.random(len(problem.feats)) < 0.8
        result = scored.fit(problem, self._target(request.targets()), terms, start=start, allowed=allowed)
        edit = f"grew scored parents' {len(start)} terms to {len(result.terms)}" if start else None
        return self._scored_child(result, request, "fit_scored", edit)

    def _fit_wide(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        """Fits a wide scored program to the head: every term weighted at once, the strongest kept
        (up to `wide_terms`: the head's whole table; fit_prune and fit_scored make the shorter
        programs of its front). Scored parents' terms are the starting weights."""
        problem, target, result, start = self._table(request)
        edit = f"refitted scored parents' {len(start)} terms as {len(result.terms)}" if start else None
        return self._scored_child(result, request, "fit_wide", edit)

    def _table(self, request: base.Request) -> tuple[scored.Problem, np.ndarray, scored.Fit, list]:
        """Returns the head's wide fit (scored parents' terms its start) with its problem, target rows and start."""
        problem, target = self._head_problem(request)
        allowed = self._free(problem, len(self._base_wide().keys))   # invented and library terms: one each
        start = self._parent_terms(request, problem)
        return problem, target, scored.fit_wide(problem, target, self.settings.wide_terms, start=start,
                                                allowed=allowed), start

    def _head_problem(self, request: base.Request) -> tuple[scored.Problem, np.ndarray]:
        """Returns the terms a head's table weighs on the wide sample (the vocabulary, the library, the head's
        invented key terms and its own affinities) and the head's target rows there."""
        heads = request.targets()
        problem = self._wide_problem()
        target = self._target(heads, self._wide_sample)
        if self.settings.invent:   # one term per head, for every query alike (per class, a table in each)
            sample = self._wide_sample
            invented = invent.terms(sample.tokens, sample.lengths, target, self.causal)
            if invented:
                problem = problem.extended(sample, invented)
        return self._own_terms(problem, self._wide_sample, request), target

    def _fit_sparse(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        """Fits the best scored program of at most `sparse_terms` terms within `sparse_nodes` AST nodes
        (a beam search over subsets of the vocabulary, near-identical terms resolved to the most readable)."""
        problem = self._own_terms(self._scored_problem(), self.fitter.sample, request)
        result = sparse.fit(problem, self._target(request.targets()), self.settings.sparse_terms,
                            self.settings.sparse_nodes, causal=self.causal)
        return self._scored_child(result, request, "fit_sparse", None)

    def _fit_within(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        """Cuts the head's wide table (fitted afresh, scored parents' terms its start) down to a node budget:
        `within_nodes`, or a half or three quarters of it, so the front has programs across that range."""
        budget = int(self.settings.within_nodes * rng.choice([0.5, 0.75, 1.0]))
        problem, target, table, _ = self._table(request)
        terms = [(problem.index(f.expr), w) for f, w in table.terms]
        result = sparse.cut(problem, target, terms, budget, self.causal)
        edit = f"cut the head's {len(terms)}-term table to {len(result.terms)} terms within {budget} AST nodes"
        return self._scored_child(result, request, "fit_within", edit)

    def _parent_terms(self, request: base.Request, problem: scored.Problem) -> list[tuple[int, float]]:
        """Returns the scored parents' terms (both, in a crossover; the first's weight where both
        have a term), strongest first."""
        start: list[tuple[int, float]] = []
        for parent in request.parents:
            known = {i for i, _ in start}
            start += [(i, w) for i, w in scored_text.read(parent.source, problem) or [] if i not in known]
        return sorted(start, key=lambda t: -abs(t[1]))

    def _target(self, heads: tuple[int, ...], sample=None) -> np.ndarray:
        """Returns the target heads' mean rows (R, N) on the fit sample, or the one given."""
        return (sample or self.fitter.sample).targets[list(heads)].mean(axis=0)

    def _scored_child(self, result: scored.Fit, request: base.Request, label: str,
                      edit: str | None) -> tuple[str, dict]:
        """Returns a fitted scored program's canonical source and its meta."""
        heads = request.targets()
        if not result.terms:
            raise NotApplicable(f"no score term helps heads {list(heads)}")
        meta = {"heads": list(heads), "fit_iou": round(result.iou, 4), "label": label}
        if edit:
            meta["edit"] = edit
        return canonical.tidy(scored_text.source(result), self.causal), meta

    def _scored_problem(self) -> scored.Problem:
        """Returns the score terms on the fit sample, the run's library among them."""
        if getattr(self, "_scored", None) is None:
            self._scored = scored.problem(self.fitter, self.settings.linguistic, self.causal)
        return self._library_problem(self._scored, self.fitter.sample)

    def _own_terms(self, problem: scored.Problem, sample, request: base.Request) -> scored.Problem:
        """Returns the problem with the head's affinity (evo.affinity) as more terms, where the run has affinities
        and the request aims at one head (the terms name their head): at each pair's distance apart where the
        model is rotary (gemma-3-270m, all 72 heads, the wide fit on the search split scored on validation:
        0.7793 mean IoU against 0.7661 with the tokens alone, 45 heads up by 0.001 or more; both terms at once
        0.7782), else the tokens alone. Where the run reads context (`Settings.context`), the head's context
        grows a step at a time: the term its parents read (the widest) and the next, each token read beside one
        more token before it (evo.affinity.context; 17 heads, one a layer past the first, the same fit scored on
        validation: 0.765 alone, 0.797 beside 1, 0.821 beside 2); a child keeps the step only if it fits better."""
        heads = request.targets()
        if not self.settings.affinity or len(heads) != 1:
            return problem
        if getattr(self, "_affinity_of", None) is None:
            from evo import affinity, attention_set   # the set's affinities, read once beside it (trusted code)

            aset = attention_set.AttentionSet.load(self.fitter.aset_path)
            affinity.preload(self.fitter.aset_path)
            far = self.settings.at_distance and affinity.at_distance_kept(self.fitter.aset_path)
            kept = [c for c in range(1, affinity.contexts.MAX + 1)
                    if self.settings.context and affinity.at_distance_kept(self.fitter.aset_path, c)]
            self._affinity_of = (str(aset.model), int(aset.meta["n_heads"]), far, max(kept, default=0))
        model, n_heads, far, most = self._affinity_of
        head = divmod(int(heads[0]), n_heads)
        from evo import affinity

        read = affinity.context_read([p.source for p in request.parents], model, *head) if most else 0
        own = [score_terms.affinity_in_context(model, *head, read) if read else
               score_terms.affinity_at_distance(model, *head) if far else score_terms.affinity(model, *head)]
        if read < most and head[0] > 0:   # a first layer reads no context: its step would be the same values
            own.append(score_terms.affinity_in_context(model, *head, read + 1))
        return problem.extended(sample, own)

    def _wide_problem(self) -> scored.Problem:
        """Returns the score terms on the wide fits' larger sample (`wide_sentences`), the library among them."""
        return self._library_problem(self._base_wide(), self._wide_sample)

    def _base_wide(self) -> scored.Problem:
        """Returns the fixed vocabulary's terms on the wide sample, built once per process."""
        if getattr(self, "_wide", None) is None:
            self._wide_sample = fit.Sample(self.fitter.aset_path, self.settings.wide_sentences)
            self._wide = scored.problem(self.fitter, self.settings.linguistic, self.causal, self._wide_sample)
        return self._wide

    def _prune_scored(self, problem: scored.Problem, terms: list[tuple[int, float]],
                      heads: tuple[int, ...]) -> tuple[str, dict]:
        """Drops the score terms the head can do without, within `prune_loss` IoU in all (on the fit
        sample: pruning a wide program on the wide sample took several times as long)."""
        if len(terms) < 2:
            raise NotApplicable("the scored parent has no term to spare")
        result = scored.prune(problem, self._target(heads), terms, self.settings.prune_loss)
        if not result.terms:
            raise NotApplicable("pruning left no score term with a weight that rounds above zero")
        if len(result.terms) >= len(terms):
            raise NotApplicable(f"every score term carries more than {self.settings.prune_loss} IoU")
        source = canonical.tidy(scored_text.source(result), self.causal)
        return source, {"heads": list(heads), "fit_iou": round(result.iou, 4),
                        "edit": f"dropped {len(terms) - len(result.terms)} of {len(terms)} score terms"}
