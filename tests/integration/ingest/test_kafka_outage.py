"""With the broker down the API answers 503 in bounded time and claims nothing; once back, the same
batch is accepted. Uses a broker of its own, so stopping it disturbs no other test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from llmops_devtools.stack.kafka import KafkaBroker
from llmops_devtools.stack.processes import stack_dir
from llmops_ingest.api import create_app
from llmops_ingest.settings import IngestSettings
from llmops_shared.kafka import ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import INTERACTIONS_RAW
from tests.support.events import collect, end_offsets, make_event
from tests.support.servers import free_port, serve

pytestmark = pytest.mark.integration

KAFKA_TIMEOUT_S = 3.0


@pytest.fixture
def own_broker(stack: CommonSettings, tmp_path: Path) -> Iterator[KafkaBroker]:
    home = tmp_path / "kafka"
    home.mkdir()
    # share the jars of the main stack's broker if it has them (it may be a broker this stack did not
    # start, found listening); otherwise this broker copies its own from the Maven cache
    shared_lib = stack_dir() / "kafka" / "lib"
    if shared_lib.is_dir():
        (home / "lib").symlink_to(shared_lib)
    broker = KafkaBroker(home, port=free_port(), controller_port=free_port(), heap="512m")
    broker.start()
    yield broker
    broker.stop(timeout_s=10)


async def test_broker_down_gives_503_then_the_same_batch_is_accepted(
        stack: CommonSettings, own_broker: KafkaBroker, tenant: str, make_key) -> None:
    await ensure_topics(own_broker.bootstrap)
    settings = IngestSettings(**{**stack.model_dump(), "kafka_bootstrap": own_broker.bootstrap},
                              kafka_timeout_s=KAFKA_TIMEOUT_S)
    key = await make_key(tenant, ["ingest:write"])
    headers = {"Authorization": f"Bearer {key}"}
    warmup = {"interactions": [make_event()]}
    batch = {"interactions": [make_event() for _ in range(20)]}

    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await client.post(f"{url}/v1/interactions", json=warmup, headers=headers)).status_code == 202

            own_broker.stop(timeout_s=20)
            started = time.monotonic()
            down = await client.post(f"{url}/v1/interactions", json=batch, headers=headers)
            took = time.monotonic() - started
            assert down.status_code == 503
            assert "nothing was accepted" in down.json()["detail"]
            assert down.headers["content-type"] == "application/problem+json"
            assert down.headers["retry-after"]
            assert took < KAFKA_TIMEOUT_S + 2, f"503 took {took:.1f}s"
            ready = await client.get(f"{url}/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["kafka"].startswith("error")

            own_broker.start()
            since = await end_offsets(own_broker.bootstrap, INTERACTIONS_RAW)
            deadline = time.monotonic() + 60
            while True:  # the client's retry, as the SDK does it
                again = await client.post(f"{url}/v1/interactions", json=batch, headers=headers)
                if again.status_code != 503 or time.monotonic() > deadline:
                    break
            assert again.status_code == 202, again.text
            assert again.json()["accepted"] == 20

    ids = {e["event_id"] for e in batch["interactions"]}
    records = await collect(own_broker.bootstrap, INTERACTIONS_RAW, since,
                            keep=lambda r: orjson.loads(r.value)["event_id"] in ids,
                            until=lambda found: {orjson.loads(r.value)["event_id"] for r in found} >= ids)
    assert {orjson.loads(r.value)["event_id"] for r in records} == ids
