from __future__ import annotations

import gc

from llmops_shared.heap import freeze_long_lived


def test_objects_alive_at_start_up_are_left_out_of_garbage_collections() -> None:
    loaded = [[i] for i in range(1000)]  # stands for a model's objects: alive for the whole process
    thresholds = gc.get_threshold()
    try:
        frozen = freeze_long_lived()
        assert frozen >= 1000
        ids = {id(x) for x in loaded}
        assert not any(id(o) in ids for o in gc.get_objects())  # no generation holds them: collections skip them
        later = [0]
        assert any(o is later for o in gc.get_objects())  # what comes later is collected as before
        assert gc.get_threshold() == thresholds  # none given: unchanged
    finally:
        gc.unfreeze()


def test_thresholds_are_set_when_given() -> None:
    thresholds = gc.get_threshold()
    try:
        freeze_long_lived((12_345, 17, 19))
        assert gc.get_threshold() == (12_345, 17, 19)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_garbage_is_collected_before_the_freeze() -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    Cycle()  # unreachable, but alive until a collection finds the cycle
    try:
        freeze_long_lived()
        assert not any(isinstance(o, Cycle) for o in gc.get_objects(generation=None))
    finally:
        gc.unfreeze()
