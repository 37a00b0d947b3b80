"""Overlapping read -> compute -> write stages: order kept, errors re-raised, threads stopped."""

from __future__ import annotations

import threading
import time

import pytest

from edgesr.stages import run_stages


def test_every_item_reaches_the_sink_in_order():
    seen: list[int] = []
    run_stages(range(50), lambda x: x * x, seen.append)
    assert seen == [x * x for x in range(50)]


def test_stages_overlap():
    # three stages of 20 ms per item: about 20 ms per item overlapped, 60 in sequence
    started = time.perf_counter()
    run_stages((time.sleep(0.02) or i for i in range(15)), lambda x: time.sleep(0.02) or x,
               lambda x: time.sleep(0.02))
    assert time.perf_counter() - started < 15 * 0.045


@pytest.mark.parametrize("where", ["source", "compute", "sink"])
def test_an_error_in_any_stage_reaches_the_caller_and_stops_the_threads(where):
    def source():
        for i in range(100):
            if where == "source" and i == 5:
                raise ValueError("bad source")
            yield i

    def compute(x: int) -> int:
        if where == "compute" and x == 5:
            raise ValueError("bad compute")
        return x

    def sink(x: int) -> None:
        if where == "sink" and x == 5:
            raise ValueError("bad sink")

    before = threading.active_count()
    with pytest.raises(ValueError, match=f"bad {where}"):
        run_stages(source(), compute, sink)
    assert threading.active_count() == before
