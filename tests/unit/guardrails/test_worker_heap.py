from __future__ import annotations

import gc

from llmops_guardrails.worker import freeze_loaded_objects


def test_objects_alive_after_warm_up_are_left_out_of_garbage_collections() -> None:
    loaded = [[i] for i in range(1000)]  # stands for the model's objects: alive for the whole process
    try:
        frozen = freeze_loaded_objects()
        assert frozen >= 1000
        ids = {id(x) for x in loaded}
        assert not any(id(o) in ids for o in gc.get_objects())  # no generation holds them: collections skip them
        later = [0]
        assert any(o is later for o in gc.get_objects())  # what comes later is collected as before
    finally:
        gc.unfreeze()
