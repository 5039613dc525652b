"""The offline operator's edits of scored programs (operators.scored): fit, grow and prune them.

    fit_scored   a row softmax of a few score terms fitted to the head; scored parents' terms
                 (both, in a crossover) are refitted and grow by one to three terms
    fit_prune    on a scored parent: drop the score terms the head can do without

A mixin of the symbolic operator, beside operators.fit_edits (needs `settings`, `fitter`, `causal`).
"""

import numpy as np

from operators import base, canonical, scored
from operators.ast_edits import NotApplicable


class ScoredEdits:
    """Fitting, growing and pruning scored programs."""

    def _fit_scored(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        """Fits a scored program (softmax of a few terms) to the head: scored parents' terms (both, in a
        crossover) are refitted and grow by 1-3 terms; otherwise it starts afresh. New terms come from
        a random 80 % of the vocabulary."""
        heads = request.targets()
        problem = self._scored_problem()
        most = self.settings.scored_terms
        start: list[tuple[int, float]] = []
        for parent in request.parents:   # a crossover starts from both scored parents' terms
            known = {i for i, _ in start}
            start += [(i, w) for i, w in scored.read(parent.source, problem) or [] if i not in known]
        start = sorted(start, key=lambda t: -abs(t[1]))[:most - 1]
        terms = min(most, len(start) + int(rng.integers(1, 4))) if start else int(rng.integers(2, most + 1))
        allowed = rng.random(len(problem.feats)) < 0.8
        target = self.fitter.sample.targets[list(heads)].mean(axis=0)
        result = scored.fit(problem, target, terms, start=start, allowed=allowed)
        if not result.terms:
            raise NotApplicable(f"no score term helps heads {list(heads)}")
        source = canonical.tidy(scored.source(result), self.causal)
        meta = {"heads": list(heads), "fit_iou": round(result.iou, 4), "label": "fit_scored"}
        if start:
            meta["edit"] = f"grew scored parents' {len(start)} terms to {len(result.terms)}"
        return source, meta

    def _scored_problem(self) -> scored.Problem:
        """Returns the score terms on the fit sample, built once per process."""
        if getattr(self, "_scored", None) is None:
            self._scored = scored.problem(self.fitter, self.settings.linguistic, self.causal)
        return self._scored

    def _prune_scored(self, terms: list[tuple[int, float]], heads: tuple[int, ...]) -> tuple[str, dict]:
        """Drops the score terms the head can do without, within `prune_loss` IoU in all."""
        if len(terms) < 2:
            raise NotApplicable("the scored parent has no term to spare")
        target = self.fitter.sample.targets[list(heads)].mean(axis=0)
        result = scored.prune(self._scored, target, terms, self.settings.prune_loss)
        if len(result.terms) >= len(terms):
            raise NotApplicable(f"every score term carries more than {self.settings.prune_loss} IoU")
        source = canonical.tidy(scored.source(result), self.causal)
        return source, {"heads": list(heads), "fit_iou": round(result.iou, 4),
                        "edit": f"dropped {len(terms) - len(result.terms)} of {len(terms)} score terms"}
