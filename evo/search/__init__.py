"""The search engine: the loop (engine), parent choice and NSGA-II (selection), the archive of
evaluated programs, the background downstream cascade, checkpoints, the run log, progress and export.

`from evo import search` then `search.Search(...)`, `search.Budget(...)`, `search.Settings(...)`.
"""

from evo.search.engine import INTERRUPTED, LOG, Budget, Downstream, Evaluator, Search, Settings

__all__ = ["INTERRUPTED", "LOG", "Budget", "Downstream", "Evaluator", "Search", "Settings"]
