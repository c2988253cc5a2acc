"""The billing worker's garbage collector: the batches in flight stay under the young generation's threshold."""

from __future__ import annotations

import gc
import uuid

import orjson

from llmops_billing.billable import decode_billable
from llmops_billing.settings import BillingSettings
from llmops_billing.worker import Priced, _priced
from tests.unit.billing.test_ledger import CATALOGUE, PRICED_AT
from tests.unit.billing.test_worker_outputs import mix, seeded_uuid4


def test_the_batches_in_flight_never_start_a_young_collection() -> None:
    """What `batches_in_flight` full batches keep alive while the worker handles them (decoded events, their priced
    rows, staging records and usage messages) stays under the young threshold: a young collection would walk all of
    it to free nothing. And a batch makes no reference cycle: once dropped, it is gone without the collector."""
    settings = BillingSettings()
    with seeded_uuid4():
        base = mix()
    payloads = []
    for i in range(settings.batch_max_events * settings.batches_in_flight):
        event = orjson.loads(base[i % len(base)])
        event["event_id"] = str(uuid.UUID(int=i + 1))
        payloads.append(orjson.dumps(event))
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        before = len(gc.get_objects())
        priced = [_priced(decode_billable(p), CATALOGUE, PRICED_AT, b"key") for p in payloads]
        alive = len(gc.get_objects()) - before
        assert sum(1 for p in priced if isinstance(p, Priced) and p.row is not None) > len(payloads) * 0.8
        del priced
        left = len(gc.get_objects()) - before  # nothing of the batches was left in a cycle for the collector
    finally:
        gc.enable()
        gc.unfreeze()
    young, middle, old = settings.gc_thresholds
    assert young > 2 * alive and alive > 10_000  # with room: the event loop's own objects come on top
    assert left < alive / 20  # (what pricing remembers: a few hundred objects); a cycle would leave the batches
    assert middle >= 10 and old >= 10  # never more often than Python's default (700, 10, 10)
