"""The serving process's collector tuning: start-up objects frozen, young collections rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from runner.loops import GC_GEN0_THRESHOLD, tune_gc_for_serving


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tuning_freezes_start_up_objects_and_raises_the_young_threshold(restore_gc):
    gc.unfreeze()
    built_at_start_up = [{"route": n} for n in range(1000)]  # stands in for the app
    _, gen1, gen2 = gc.get_threshold()
    tune_gc_for_serving()
    assert gc.get_threshold() == (GC_GEN0_THRESHOLD, gen1, gen2)
    assert gc.get_freeze_count() >= len(built_at_start_up)
    # Cyclic garbage made after start-up is still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
