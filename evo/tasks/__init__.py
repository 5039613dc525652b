"""Multiple-choice question answering under head replacement (`evo replace --task`).

`load("builtin")` is the project's own task (evo/data/task.jsonl, see evo/data/TASK.md);
`load(PATH)` reads SciQ, PIQA, HellaSwag, ARC or generic JSONL (evo.tasks.formats).
`under_replacement` scores it for the unmodified model, the heads a replacement report
chose, the same heads as uniform attention, and the report's random heads
(evo.tasks.scoring).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

from evo import perplexity
from evo.errors import UserError
from evo.tasks import formats, scoring

BUILTIN = pathlib.Path(__file__).resolve().parent.parent / "data" / "task.jsonl"
MAX_TOKENS = 512  # context + choice; longer contexts are cut from the left


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    source: str
    shape: str
    items: tuple[formats.Item, ...]

    def head(self, n: int) -> "Task":
        """Returns the task's first `n` items."""
        return dataclasses.replace(self, items=self.items[:n])


def load(spec: str) -> Task:
    """Returns the built-in task (`builtin`) or the task in a JSONL file."""
    path = BUILTIN if spec == "builtin" else pathlib.Path(spec)
    if not path.is_file():
        raise UserError(f"--task {spec}: no such file (give a .jsonl task file or `builtin`)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"--task {spec}: cannot read it ({type(err).__name__}: {err})") from None
    items, shape = formats.parse_lines(lines, str(path) if spec != "builtin" else "builtin task")
    return Task("builtin" if spec == "builtin" else path.stem, "builtin" if spec == "builtin" else str(path),
                shape, tuple(items))


def meter(loaded, task: Task, settings: perplexity.Settings) -> tuple[perplexity.Meter, scoring.Requests]:
    """Returns a meter over the task's distinct requests, and the requests."""
    if not loaded.causal:
        raise UserError("--task scores continuations with a causal language model; this model is an encoder")
    requests = scoring.encode(loaded.tokenizer, list(task.items), MAX_TOKENS)
    return perplexity.Meter(loaded, None, settings, ids=requests.ids, scored=requests.scored), requests


def under_replacement(loaded, task: Task, best, report: dict, settings: perplexity.Settings,
                      log: Callable[[str], None] = lambda line: None) -> dict:
    """Returns the task's accuracies: unmodified, the report's heads replaced, uniform there, random heads."""
    m, requests = meter(loaded, task, settings)
    sources = {c.program: c.source for c in best.candidates}
    for options in best.options.values():
        sources.update({c.program: c.source for c in options})
    conditions = {"unmodified": {}, "replaced": {}, "uniform": {}, "random": {}}
    failed = []
    for e in report["replaced"]:
        head = (e["layer"], e["head"])
        try:
            conditions["replaced"][head] = m.matrices(sources[e["program"]])
        except perplexity.ProgramError as err:
            failed.append(f"{head[0]}.{head[1]} {e['program']}: {err}")
            continue
        conditions["uniform"][head] = m.uniform_matrices()
    for e in report["random_heads"]:
        try:
            conditions["random"][(e["layer"], e["head"])] = m.matrices(sources[e["program"]])
        except perplexity.ProgramError as err:
            failed.append(f"random {e['layer']}.{e['head']} {e['program']}: {err}")
    out = {"name": task.name, "source": task.source, "shape": task.shape, "items": len(task.items),
           "requests": len(requests.ids), "heads": len(conditions["replaced"]), "fraction": report["fraction"],
           "programs_failed": failed}
    for name, replacements in conditions.items():
        out[name] = scoring.accuracy(list(task.items), requests, scoring.loglik(m, replacements))
        log(f"task {task.name}: {name} acc {out[name]['acc']:.3f} acc_norm {out[name]['acc_norm']:.3f}")
    return out
