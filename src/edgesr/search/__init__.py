"""The paper's exhaustive search: grid selection, runner, results store, executors, Pareto fronts.

>>> from edgesr.search import SearchSettings, run_search, select_ids      # doctest: +SKIP
>>> ids = select_ids(families=["eSR-TM"], scales=[2], fields={"K": [3, 5], "C": [1, 2]})
>>> run_search(ids, "search.sqlite", SearchSettings(datasets=["Set5", "Set14"]))  # doctest: +SKIP

Modules: `grid` (which ids), `settings` (what defines a search's numbers), `task` (train ->
evaluate one id, bench it), `executors` (where tasks run: local, process pool, Ray), `runner`
(the run loop over ids), `store` (SQLite), `pareto` (fronts), `plots` (PNG), `page` (HTML).
"""

from edgesr.search.grid import parse_values, read_ids_file, select_ids, with_bicubic
from edgesr.search.pareto import analyse, load_results, load_sources, pareto_front
from edgesr.search.runner import SearchReport, default_work_dir, run_search
from edgesr.search.settings import SearchSettings
from edgesr.search.store import ResultsStore, export_store

__all__ = ["ResultsStore", "SearchReport", "SearchSettings", "analyse", "default_work_dir", "export_store",
           "load_results", "load_sources", "pareto_front", "parse_values", "read_ids_file", "run_search",
           "select_ids", "with_bicubic"]
