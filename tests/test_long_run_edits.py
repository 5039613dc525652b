"""bench/long_run.py's account of where a leg's programs went, on a synthetic run log."""

import importlib.util
import pathlib

import numpy as np
import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "long_run.py"


@pytest.fixture(scope="module")
def long_run():
    spec = importlib.util.spec_from_file_location("long_run_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(operator, iou):
    return {"operator": operator, "iou": None if iou is None else np.array(iou, dtype=np.float16)}


def test_a_leg_credits_each_edit_with_the_programs_that_raised_a_heads_best_and_what_they_added(long_run):
    log = [_entry("seed", [0.5, 0.5]), _entry("symbolic.fit_wide", [0.75, 0.5]),   # first leg: programs 0-1
           _entry("symbolic.fit_scored", [0.625, 0.5]),                             # below the best: no credit
           _entry("symbolic.fit_wide", [0.75, 0.625]),                              # head 1 +0.125
           _entry("symbolic.mix", None),                                            # failed: counted, no credit
           _entry("symbolic.fit_scored", [0.25, 0.25])]
    leg = long_run.edits(log, 2, 6)
    assert leg == {"fit_scored": {"programs": 2, "improved": 0, "gain": 0.0},
                   "fit_wide": {"programs": 1, "improved": 1, "gain": 0.0625},
                   "mix": {"programs": 1, "improved": 0, "gain": 0.0}}
    first = long_run.edits(log, 0, 2)
    assert first["fit_wide"] == {"programs": 1, "improved": 1, "gain": 0.125}   # against the seed before it
    assert first["seed"]["improved"] == 0                                        # nothing before the first program
