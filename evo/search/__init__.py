"""The search engine: the loop (engine), parent choice and NSGA-II (selection), the archive of
evaluated programs, the background downstream cascade, checkpoints, the run log, progress and export.

`from evo import search` then `search.Search(...)`, `search.Budget(...)`, `search.Settings(...)`.
The engine (which speaks the operators' interface) loads on first use, so that reading a run
(export, explain, report) loads nothing from operators/.
"""

__all__ = ["INTERRUPTED", "LOG", "Budget", "Downstream", "Evaluator", "Search", "Settings"]


def __getattr__(name: str):
    if name in __all__:
        from evo.search import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'evo.search' has no attribute {name!r}")
