"""A run directory's one owner: its file names, its config, its fingerprint and the resume rules.

    runs/NAME/config.json       RunConfig: what the run was started with (schema-versioned)
    runs/NAME/checkpoint.json   the engine's state after the last committed generation (evo.search.checkpoint)
    runs/NAME/log.jsonl         one line per evaluated program (evo.search.runlog)
    runs/NAME/llm_calls.jsonl   one line per LLM call, when an LLM ran (operators.llm.operator)
    runs/NAME/costs.json        per-head program costs that `evo replace` measured (evo.costs)
    runs/NAME/report/           `evo report`'s default output

Every command that reads or writes a run goes through this module; every file is written
atomically (evo.files).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib

from evo import files
from evo.errors import UserError

SCHEMA_VERSION = 1
CONFIG = "config.json"
CHECKPOINT = "checkpoint.json"
LOG = "log.jsonl"
LLM_CALLS = "llm_calls.jsonl"
REPORT = "report"
COSTS = "costs.json"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What a run was started with; the values that fix the problem are taken back on resume."""

    model: str                        # preset, hub id or path, as given
    corpus: str | None                # absolute path of a user corpus; None: the built-in one
    split: str                        # built-in corpus split
    sentence_tokens: int              # tokens per sentence at most
    attention_set: dict               # path, fingerprint, model, n_layers, n_heads, sentences, causal, corpus
    captured: bool                    # True: the set can be captured again if the cache was cleared
    seed: int                         # the engine's rng seed
    budgets: dict                     # evo.search.Budget as a dict
    settings: dict                    # evo.search.Settings as a dict
    operators: dict                   # operators.registry settings
    downstream_sentences: int = 0     # perplexity objective on this many sentences; 0: off
    workers: int = 2                  # worker processes (evaluation and the offline edits)
    backend: str = "loky"             # where the workers run (evo.parallel.BACKENDS); a resume may change it
    time_limit: float = 2.0           # seconds per program per sentence
    seeds_dir: str | None = None      # starting programs
    from_export: str | None = None    # also started from this export's programs
    vocabulary: dict | None = None    # {"linguistic": True, "pipeline", "version"} when spaCy helpers were on
    created: str = ""                 # ISO time the run began
    command: tuple = ()               # argv of the command that began it

    @classmethod
    def from_dict(cls, d: dict, where: str = CONFIG) -> "RunConfig":
        """Returns the config, ignoring unknown fields; a missing or wrong-typed field is a one-line error."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        missing = [f.name for f in known.values() if f.name not in values
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise UserError(f"{where} is corrupt (missing {', '.join(missing)})")
        for name, value in values.items():
            want = _TYPES[name]
            if not isinstance(value, want) or (isinstance(value, bool) and bool not in _flat(want)):
                raise UserError(f"{where} is corrupt ({name} should be {_names(want)}, "
                                f"got {type(value).__name__})")
        for key in ("path", "fingerprint", "n_layers", "n_heads"):
            if key not in values["attention_set"]:
                raise UserError(f"{where} is corrupt (attention_set has no {key})")
        values["command"] = tuple(values.get("command", ()))
        return cls(**values)

    def to_dict(self) -> dict:
        """Returns the config as config.json holds it."""
        return {**dataclasses.asdict(self), "command": list(self.command)}

    @property
    def n_heads(self) -> int:
        """Returns the heads of the model (layers x heads per layer)."""
        return int(self.attention_set["n_layers"]) * int(self.attention_set["n_heads"])


_TYPES = {"model": str, "corpus": (str, type(None)), "split": str, "sentence_tokens": int, "attention_set": dict,
          "captured": bool, "seed": int, "budgets": dict, "settings": dict, "operators": dict,
          "downstream_sentences": int, "workers": int, "backend": str, "time_limit": (int, float), "seeds_dir": (str, type(None)),
          "from_export": (str, type(None)), "vocabulary": (dict, type(None)), "created": str,
          "command": (list, tuple)}


def _flat(t) -> tuple:
    return t if isinstance(t, tuple) else (t,)


def _names(t) -> str:
    return " or ".join("null" if x is type(None) else x.__name__ for x in _flat(t))


def is_run(path: pathlib.Path) -> bool:
    """Returns whether the directory holds a run (its config)."""
    return (pathlib.Path(path) / CONFIG).is_file()


def save_config(run_dir: pathlib.Path, config: RunConfig) -> None:
    """Writes the run's config.json atomically."""
    files.write_json(pathlib.Path(run_dir) / CONFIG, {"schema_version": SCHEMA_VERSION, **config.to_dict()})


def load_config(run_dir: pathlib.Path) -> RunConfig:
    """Returns the run's config; a missing, foreign or corrupt one is a one-line error."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no run directory at {run_dir}" if not run_dir.exists()
                        else f"{run_dir} is not a directory")
    data = files.read_json(run_dir / CONFIG, "run config")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"run config in {run_dir} has schema version {data.get('schema_version')!r}; "
                        f"this headcode reads version {SCHEMA_VERSION}")
    return RunConfig.from_dict(data, str(run_dir / CONFIG))


def fingerprint(aset) -> str:
    """Returns a digest of what fixes the problem: model, shape, tokens, corpus and dtype."""
    meta = aset.meta
    fixed = {"model": aset.model, "causal": aset.causal, "n_layers": aset.n_layers,
             "n_heads": aset.n_heads, "tokens": aset.tokens,
             "extra": {k: meta[k] for k in sorted(meta) if k.startswith("corpus") or k in ("dtype", "max_tokens")}}
    return hashlib.sha256(json.dumps(fixed, sort_keys=True, default=str).encode()).hexdigest()[:16]


def aset_info(aset) -> dict:
    """Returns what config.json records of the attention set."""
    corpus = {k: v for k, v in aset.meta.items() if k.startswith("corpus")}
    return {"path": str(pathlib.Path(aset.path).resolve()), "fingerprint": fingerprint(aset),
            "model": aset.model, "n_layers": aset.n_layers, "n_heads": aset.n_heads,
            "sentences": len(aset), "causal": aset.causal, **corpus}


def attention_set(config: RunConfig, device: str = "cpu"):
    """Returns the run's attention set (captured again if the cache lost or damaged it), refusing one that changed.

    With the linguistic vocabulary, the set's annotations are made beside it first (once).
    """
    from evo import attention_set as aset_mod
    path = pathlib.Path(config.attention_set["path"])
    try:
        aset = aset_mod.AttentionSet.load(path, verify=True)
    except UserError:   # missing or damaged: a set the search captured itself is captured again
        if not config.captured:
            raise
        from evo import capture
        if path.exists():
            import warnings
            warnings.warn(f"the run's attention set at {path} is damaged; capturing it again", stacklevel=2)
        aset = capture.ensure_status(model=config.model, corpus_path=config.corpus, split=config.split,
                                     max_tokens=config.sentence_tokens, device=device, out_dir=path,
                                     force=path.exists())[0]
    if fingerprint(aset) != config.attention_set["fingerprint"]:
        raise UserError(f"the attention set at {path} has changed since the run started (fingerprint "
                        f"{fingerprint(aset)}, run has {config.attention_set['fingerprint']}); "
                        "refusing to resume against different data")
    if (config.vocabulary or {}).get("linguistic"):
        from evo import linguistic

        linguistic.ensure(aset)  # every sentence parsed once, before any worker starts
    if (config.vocabulary or {}).get("affinity"):
        from evo import affinity

        affinity.ensure(aset)    # every token read alone once (again, if the cache lost them)
    return aset


def operator_settings(config: RunConfig, run_dir: pathlib.Path) -> dict:
    """Returns the operators' settings for a run: its config's, with the run directory and its vocabulary."""
    ops = dict(config.operators, run_dir=str(run_dir))
    vocabulary = config.vocabulary or {}
    ops["symbolic"] = dict(ops.get("symbolic") or {}, linguistic=bool(vocabulary.get("linguistic")),
                           invent=bool(vocabulary.get("invented")),   # runs made before invented terms: none
                           library=bool(vocabulary.get("library")),   # before term libraries: none
                           affinity=bool(vocabulary.get("affinity")),  # before affinities: none
                           at_distance=bool(vocabulary.get("affinity_at_distance")),  # before them: tokens alone
                           context=bool(vocabulary.get("affinity_in_context")))  # before it: no context
    return ops


def vocabulary(wanted: str = "auto", aset=None) -> dict:
    """Returns the vocabulary a new run gets: the linguistic helpers whenever the extra is installed (auto),
    and each head's affinity between tokens read alone wherever the set's model loads (evo.affinity)."""
    from evo import linguistic

    found = linguistic.installed()
    if wanted == "linguistic" and found is None:
        raise UserError(f"--vocabulary linguistic needs spaCy and an English pipeline: {linguistic.INSTALL}")
    out = {"linguistic": False, "invented": True, "library": True}
    if found is not None and wanted != "base":
        out.update(linguistic=True, pipeline=found[0], version=found[1])
    if aset is not None:
        out.update(_affinity(aset))
    return out


def _affinity(aset) -> dict:
    """Returns {"affinity": True} once the set's affinities are beside it (with "affinity_at_distance": whether
    they are kept at distance too, a rotary model's), else why the run goes without."""
    from evo import affinity

    try:
        affinity.ensure(aset)
    except UserError as err:
        return {"affinity": False, "affinity_off": str(err)}
    return {"affinity": True, "affinity_at_distance": affinity.file_for(aset, True).is_file(),
            "affinity_in_context": affinity.file_for(aset, context=1).is_file()}


def check_vocabulary(run_dir: pathlib.Path, config: RunConfig) -> None:
    """Raises a one-line error when the run had the linguistic vocabulary and this machine has not."""
    from evo import linguistic

    had = config.vocabulary or {}
    if had.get("linguistic") and not vocabulary()["linguistic"]:
        raise UserError(f"run {run_dir} was searched with the linguistic vocabulary ({had.get('pipeline')} "
                        f"{had.get('version')}), which is not installed here: {linguistic.INSTALL}")


def check_resumable(run_dir: pathlib.Path, config: RunConfig, state: dict) -> None:
    """Raises a one-line error unless the checkpoint belongs to this config."""
    aset = state.get("attention_set")
    if not isinstance(aset, dict) or aset.get("fingerprint") != config.attention_set["fingerprint"]:
        raise UserError(f"checkpoint in {run_dir} belongs to another attention set than its {CONFIG}")
