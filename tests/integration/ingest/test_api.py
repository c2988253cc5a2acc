"""The ingest API on real Kafka, Postgres and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from llmops_ingest.api import create_app
from llmops_ingest.settings import IngestSettings
from llmops_shared import apikeys
from llmops_shared.clock import fixed
from llmops_shared.contract import Interaction, decode_interaction
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import INTERACTIONS_RAW
from tests.support.events import collect, end_offsets, make_event
from tests.support.servers import free_port, serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ingest_url(stack: CommonSettings) -> Iterator[str]:
    settings = IngestSettings(**stack.model_dump(), rate_limit_per_s=1000, rate_limit_burst=2000,
                              max_body_bytes=512 * 1024)
    with serve(create_app(settings)) as url:
        yield url


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_batch_arrives_in_kafka_intact_and_keyed_by_trace_id(
        stack: CommonSettings, ingest_url: str, tenant: str, make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    trace_a, trace_b = f"tr-{uuid.uuid4().hex}", f"tr-{uuid.uuid4().hex}"
    events = [make_event(trace_id=trace_a), make_event(trace_id=trace_a), make_event(trace_id=trace_b)]
    since = await end_offsets(stack.kafka_bootstrap, INTERACTIONS_RAW)
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{ingest_url}/v1/interactions", json={"interactions": events}, headers=auth(key))
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 3, "rejected": 0}

    ids = {e["event_id"] for e in events}
    records = await collect(stack.kafka_bootstrap, INTERACTIONS_RAW, since,
                            keep=lambda r: orjson.loads(r.value)["event_id"] in ids,
                            until=lambda found: len(found) >= 3)
    assert len(records) == 3
    by_id = {orjson.loads(r.value)["event_id"]: r for r in records}
    for sent in events:
        record = by_id[sent["event_id"]]
        assert record.key == sent["trace_id"].encode()
        # intact: exactly the event that was sent, with the key's tenant and nothing else changed
        assert decode_interaction(record.value) == Interaction.model_validate({**sent, "tenant_id": tenant})
    # one trace, one partition: its events stay in order for every consumer
    assert len({r.partition for r in records if r.key == trace_a.encode()}) == 1


async def test_some_invalid_events_give_207_with_per_index_errors(ingest_url: str, tenant: str, make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    body = {"interactions": [make_event(), make_event(usage={"input_tokens": -3}), make_event(bogus=True)]}
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{ingest_url}/v1/interactions", json=body, headers=auth(key))
    assert resp.status_code == 207
    data = resp.json()
    assert data["accepted"] == 1 and data["rejected"] == 2
    assert data["errors"] == [
        {"index": 1, "errors": [{"field": "usage.input_tokens",
                                 "message": "Input should be greater than or equal to 0"}]},
        {"index": 2, "errors": [{"field": "bogus", "message": "unknown field"}]},
    ]


async def test_no_valid_event_is_422_naming_the_field(ingest_url: str, tenant: str, make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{ingest_url}/v1/interactions", json=make_event(occurred_at="yesterday"),
                                 headers=auth(key))
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["status"] == 422 and problem["title"] == "Unprocessable Content"
    assert problem["errors"][0]["loc"] == ["body", "occurred_at"]
    assert problem["detail"].startswith("no event accepted, 1 rejected: occurred_at: ")


async def test_a_batch_of_invalid_events_is_422_naming_each_event_by_index(
        ingest_url: str, tenant: str, make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    body = {"interactions": [make_event(usage={"input_tokens": -3}), make_event(bogus=True), "nope"]}
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{ingest_url}/v1/interactions", json=body, headers=auth(key))
    assert resp.status_code == 422
    assert resp.json()["errors"] == [
        {"loc": ["body", "interactions", 0, "usage", "input_tokens"],
         "msg": "Input should be greater than or equal to 0", "type": "value_error"},
        {"loc": ["body", "interactions", 1, "bogus"], "msg": "unknown field", "type": "value_error"},
        {"loc": ["body", "interactions", 2], "msg": "an event must be a JSON object", "type": "value_error"},
    ]


async def test_an_unparseable_body_is_400(ingest_url: str, tenant: str, make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{ingest_url}/v1/interactions", content=b'{"interactions": [',
                                 headers={**auth(key), "content-type": "application/json"})
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["title"] == "Bad Request" and "not valid JSON" in resp.json()["detail"]


async def test_auth_errors(ingest_url: str, tenant: str, make_key, pg_pool, redis_client) -> None:
    url = f"{ingest_url}/v1/interactions"
    body = {"interactions": [make_event()]}
    reader = await make_key(tenant, ["billing:read"])
    writer = await make_key(tenant, ["ingest:write"])
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, json=body)).status_code == 401
        assert (await client.post(url, json=body, headers=auth("lk_nope"))).status_code == 401
        forged = writer[:-4] + ("AAAA" if not writer.endswith("AAAA") else "BBBB")
        assert (await client.post(url, json=body, headers=auth(forged))).status_code == 401
        resp = await client.post(url, json=body, headers=auth(reader))
        assert resp.status_code == 403 and "ingest:write" in resp.json()["detail"]
        assert resp.headers["content-type"] == "application/problem+json"
        assert (await client.post(url, json=body, headers=auth(writer))).status_code == 202
        # revocation takes effect at once: the cached look-up is dropped with it
        key_id = writer.split("_")[1]
        assert await apikeys.revoke_key(pg_pool, key_id, redis_client)
        assert (await client.post(url, json={"interactions": [make_event()]}, headers=auth(writer))).status_code == 401


async def test_too_large_is_413(ingest_url: str, tenant: str, make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    async with httpx.AsyncClient() as client:
        many = {"interactions": [make_event() for _ in range(1001)]}
        resp = await client.post(f"{ingest_url}/v1/interactions", content=orjson.dumps(many),
                                 headers={**auth(key), "content-type": "application/json"})
        assert resp.status_code == 413  # body limit (512 KiB in this test) or event count, whichever first
        few_big = {"interactions": [make_event(output="x" * 400_000), make_event(output="y" * 400_000)]}
        resp = await client.post(f"{ingest_url}/v1/interactions", json=few_big, headers=auth(key))
        assert resp.status_code == 413
        assert "limit" in resp.json()["detail"]


async def test_too_many_events_in_one_request_is_413(stack: CommonSettings, tenant: str, make_key) -> None:
    settings = IngestSettings(**stack.model_dump())
    key = await make_key(tenant, ["ingest:write"])
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient() as client:
            resp = await client.post(f"{url}/v1/interactions", json={"interactions": [make_event()] * 1001},
                                     headers=auth(key))
    assert resp.status_code == 413
    assert "1001 events" in resp.json()["detail"]


async def test_past_the_rate_limit_is_429_with_retry_after(stack: CommonSettings, tenant: str, make_key) -> None:
    settings = IngestSettings(**stack.model_dump(), rate_limit_per_s=2, rate_limit_burst=5)
    key = await make_key(tenant, ["ingest:write"])
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient() as client:
            first = await client.post(f"{url}/v1/interactions", json={"interactions": [make_event()] * 5},
                                      headers=auth(key))
            second = await client.post(f"{url}/v1/interactions", json={"interactions": [make_event()] * 3},
                                       headers=auth(key))
    assert first.status_code == 202
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1
    assert second.json() == {"type": "about:blank", "title": "Too Many Requests", "status": 429,
                             "detail": "rate limit exceeded for this API key"}


async def test_a_key_created_with_its_own_rate_is_limited_at_that_rate_and_others_at_the_default(
        stack: CommonSettings, tenant: str, make_key) -> None:
    """The bucket holds max(burst, rate) events and refills at the key's rate: with a burst of 5, a key of
    its own rate 1 event/s has 5 events, then needs 3 s for 3 more; a key at the default 1,000/s has 1,000."""
    settings = IngestSettings(**stack.model_dump(), rate_limit_per_s=1000, rate_limit_burst=5)
    slow = await make_key(tenant, ["ingest:write"], rate_limit_per_s=1)
    default = await make_key(tenant, ["ingest:write"])
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient() as client:
            async def post(key: str, n: int) -> httpx.Response:
                return await client.post(f"{url}/v1/interactions", json={"interactions": [make_event()] * n},
                                         headers=auth(key))

            slow_answers = [await post(slow, 5), await post(slow, 3)]
            default_answers = [await post(default, 5), await post(default, 3), await post(default, 900)]
    assert [a.status_code for a in slow_answers] == [202, 429]
    assert int(slow_answers[1].headers["retry-after"]) >= 2  # 3 events at 1 event/s (less what refilled)
    assert [a.status_code for a in default_answers] == [202, 202, 202]


async def test_with_redis_down_keys_are_looked_up_in_postgres_and_no_rate_is_applied(
        stack: CommonSettings, tenant: str, make_key) -> None:
    """docs/ingest.md: if Redis is unreachable, requests are let through: intake matters more than the limit."""
    unreachable = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = IngestSettings(**{**stack.model_dump(), "redis_url": unreachable}, rate_limit_per_s=1,
                              rate_limit_burst=3)
    key = await make_key(tenant, ["ingest:write"])
    reader = await make_key(tenant, ["billing:read"])
    events = [make_event() for _ in range(9)]
    since = await end_offsets(stack.kafka_bootstrap, INTERACTIONS_RAW)
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(timeout=30) as client:
            accepted = [await client.post(f"{url}/v1/interactions", json={"interactions": events[i:i + 3]},
                                          headers=auth(key)) for i in (0, 3, 6)]  # 9 events in a row: 3 times the burst
            refused = [await client.post(f"{url}/v1/interactions", json={"interactions": [make_event()]},
                                         headers=auth(k)) for k in ("lk_nope", reader)]
            ready = await client.get(f"{url}/readyz")
    assert [a.status_code for a in accepted] == [202, 202, 202], [a.text for a in accepted]
    assert [r.status_code for r in refused] == [401, 403]  # the look-up still holds, from Postgres
    assert ready.status_code == 503 and ready.json()["checks"]["redis"] != "ok"
    ids = {e["event_id"] for e in events}
    records = await collect(stack.kafka_bootstrap, INTERACTIONS_RAW, since,
                            keep=lambda r: orjson.loads(r.value)["event_id"] in ids,
                            until=lambda found: len(found) >= len(ids))
    assert {orjson.loads(r.value)["event_id"] for r in records} == ids


async def test_health_readiness_metrics_and_openapi(ingest_url: str) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{ingest_url}/healthz")).json() == {"status": "ok"}
        ready = await client.get(f"{ingest_url}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "kafka": "ok"}
        metrics = (await client.get(f"{ingest_url}/metrics")).text
        assert "llmops_ingest_events_total" in metrics
        spec = (await client.get(f"{ingest_url}/openapi.json")).json()
        assert "/v1/interactions" in spec["paths"]


# -- the accepted window of `occurred_at` (issue 10, item 7) --------------------------------------------

SERVER_NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)  # the app's clock: no test depends on today's date


@pytest.fixture(scope="module")
def windowed_ingest_url(stack: CommonSettings) -> Iterator[str]:
    settings = IngestSettings(**stack.model_dump(), rate_limit_per_s=1000, rate_limit_burst=2000,
                              max_age_days=30, max_ahead_s=86_400)
    with serve(create_app(settings, clock=fixed(SERVER_NOW))) as url:
        yield url


async def test_events_spanning_200_months_are_refused_naming_occurred_at_per_event(
        windowed_ingest_url: str, tenant: str, make_key) -> None:
    """One request that would have made 200 ledger partitions: every event is out of the window."""
    key = await make_key(tenant, ["ingest:write"])
    months = ([datetime(2010 + m // 12, 1 + m % 12, 1, tzinfo=UTC) for m in range(100)]     # 2010-01 .. 2018-04
              + [datetime(2027 + m // 12, 1 + m % 12, 1, tzinfo=UTC) for m in range(100)])  # 2027-01 .. 2035-04
    body = {"interactions": [make_event(occurred_at=m.isoformat()) for m in months]}
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{windowed_ingest_url}/v1/interactions", json=body, headers=auth(key))
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    errors = resp.json()["errors"]
    assert [e["loc"] for e in errors] == [["body", "interactions", i, "occurred_at"] for i in range(200)]
    assert "too old" in errors[0]["msg"] and "LLMOPS_INGEST_MAX_AGE_DAYS" in errors[0]["msg"]
    assert "producer's clock" in errors[-1]["msg"] and "LLMOPS_INGEST_MAX_AHEAD_S" in errors[-1]["msg"]


async def test_events_inside_the_window_are_accepted_and_the_others_listed_by_index(
        windowed_ingest_url: str, tenant: str, make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    at = [SERVER_NOW - timedelta(days=30) + timedelta(seconds=1),   # oldest accepted
          SERVER_NOW - timedelta(days=30, seconds=1),                # a second too old
          SERVER_NOW + timedelta(days=1),                            # newest accepted
          SERVER_NOW + timedelta(days=1, seconds=1),                 # a second too far ahead
          SERVER_NOW]
    body = {"interactions": [make_event(occurred_at=a.isoformat()) for a in at]}
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{windowed_ingest_url}/v1/interactions", json=body, headers=auth(key))
    assert resp.status_code == 207, resp.text
    result = resp.json()
    assert (result["accepted"], result["rejected"]) == (3, 2)
    assert [(r["index"], [e["field"] for e in r["errors"]]) for r in result["errors"]] == [
        (1, ["occurred_at"]), (3, ["occurred_at"])]
