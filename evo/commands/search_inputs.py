"""What a search starts from and is set up with: its seed programs, its attention set, its engine and
operator settings (a run made before a setting existed resumes as it ran), its default folder name."""

from __future__ import annotations

import pathlib

from evo.errors import UserError

DEFAULT_SEEDS = pathlib.Path(__file__).resolve().parents[2] / "seeds"


def starting_programs(seeds_dir, from_export) -> list[tuple[str, str, str]]:
    """Returns (id, source, origin) for every seed program and exported program."""
    from evo import program

    folder = pathlib.Path(seeds_dir) if seeds_dir else DEFAULT_SEEDS
    if not folder.is_dir():
        raise UserError(f"seeds directory {folder} does not exist (give --seeds-dir)")
    paths = sorted(folder.glob("*.py"))
    if not paths:
        raise UserError(f"no *.py programs in seeds directory {folder}")
    out = [(p.stem, program.read(p), "seed") for p in paths]
    if from_export:
        exported = pathlib.Path(from_export) / "programs"
        if not exported.is_dir():
            raise UserError(f"--from-export {from_export}: no programs/ directory (is it an `evo export` output?)")
        out += [(p.stem, program.read(p), "export") for p in sorted(exported.glob("*.py"))]
    return out


def attention_set(args):
    """Returns the attention set the run scores against (captured on demand and cached)."""
    from evo import attention_set

    if args.attention_set:
        return attention_set.AttentionSet.load(args.attention_set, verify=True)
    from evo import capture

    return capture.ensure(model=args.model, corpus_path=args.corpus, split=args.split,
                          max_tokens=args.sentence_tokens, device=args.device)


def absolute(path) -> str | None:
    """Returns the path made absolute, so a resume from another folder finds it."""
    return str(pathlib.Path(path).resolve()) if path else None


BEFORE_FIELDS = {"cover_visits": 0}   # settings a run made before they existed resumes with (as it ran)


def settings(config):
    from evo import search
    try:
        return search.Settings(**{**BEFORE_FIELDS, **config.settings})
    except TypeError as err:
        raise UserError(f"config.json is corrupt (settings: {err})") from None


def operator_settings(args) -> dict:
    from operators import registry

    hook = getattr(registry, "settings_from_args", None)
    return hook(args) if hook else {"operators": args.operators}


def slug(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in pathlib.Path(model).name) or "model"
