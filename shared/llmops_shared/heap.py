"""The garbage collector in the long-running workers.

What a worker holds once started (modules, settings, models, word lists, price lists) lives as long as the
process. Left in the collector's generations, every full collection walks it again: for the guardrails worker's
~200,000 model and list objects about 0.1 s each, for billing more than pricing an event costs. Frozen after
start-up, it is never scanned again; everything allocated later is collected as before."""
from __future__ import annotations

import gc

Thresholds = tuple[int, int, int]


def freeze_long_lived(thresholds: Thresholds | None = None) -> int:
    """Collect what is garbage now, move every object still alive out of the collector's sight, and set the
    generation thresholds if given (a worker whose batches allocate many short-lived objects collects less
    often). Returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    if thresholds is not None:
        gc.set_threshold(*thresholds)
    return gc.get_freeze_count()
