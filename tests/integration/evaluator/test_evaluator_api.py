"""The evaluator API on the real Postgres and Redis: every endpoint, every status, tenant isolation."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from llmops_evaluator.api import create_app
from llmops_evaluator.evaluations import Evaluation
from llmops_evaluator.judge_client import JudgeResult, JudgeStatus
from llmops_evaluator.result_store import result_row, upsert_results
from llmops_evaluator.review_store import ReviewEntry, enqueue_for_review
from llmops_evaluator.rubrics import BUILTIN
from llmops_evaluator.settings import EvaluatorSettings
from llmops_shared.contract import Interaction
from llmops_shared.settings import CommonSettings
from tests.support.events import make_event
from tests.support.servers import serve

pytestmark = pytest.mark.integration

RELEVANCE = BUILTIN["relevance@1"]
BOUND = f"t-bound-{uuid.uuid4().hex[:8]}"  # the one tenant the `bound` credential is granted to

# The operator's grants, as the API checks configs against them (the keys stay with the worker).
CREDENTIALS = {
    "openai": {"key_env": "JUDGE_KEY", "base_urls": ["https://api.openai.com/v1"], "tenants": ["*"]},
    "bound": {"key_env": "BOUND_KEY", "base_urls": ["https://judge.bound.example/v1"], "tenants": [BOUND]},
    # An operator's mistake: a credential for internal endpoints. Egress refuses them all the same.
    "careless": {"key_env": "CARELESS_KEY", "tenants": ["*"], "base_urls": [
        "http://127.0.0.1:5432/v1", "http://169.254.169.254/", "http://judge.internal.example/v1",
        "http://[::ffff:127.0.0.1]:6379/v1", "http://nowhere.example/v1", "http://127.0.0.1:8099/v1"]},
}
# Names answer from this table, never from DNS. The public addresses are only checked, never connected to.
ADDRESSES = {"api.openai.com": ["162.159.140.245"], "judge.bound.example": ["93.184.215.14"],
             "judge.internal.example": ["93.184.215.14", "10.1.2.3"]}


async def resolve(host: str, port: int) -> list[str]:
    if host not in ADDRESSES:
        raise OSError(-2, "Name or service not known")
    return ADDRESSES[host]


@dataclass
class MovingClock:
    """The API's "now" (review locks): a fixed instant the tests move on; never the wall clock."""

    at: datetime

    def __call__(self) -> datetime:
        return self.at


CLOCK = MovingClock(datetime(2026, 3, 10, 9, 30, tzinfo=UTC))


@pytest.fixture(scope="module")
def api_url(stack: CommonSettings) -> Iterator[str]:
    settings = EvaluatorSettings(**{**stack.model_dump(), "egress_allow": "127.0.0.1:8099"}, credentials=CREDENTIALS)
    with serve(create_app(settings, resolver=resolve, clock=CLOCK)) as url:
        yield url


@dataclass
class Tenant:
    id: str
    admin: httpx.AsyncClient
    writer: httpx.AsyncClient
    reviewer: Any = None  # `await tenant.reviewer()` -> (a client with an eval:write key of its own, its key id)

    @property
    def writer_key_id(self) -> str:
        return key_id_of(self.writer)


def key_id_of(client: httpx.AsyncClient) -> str:
    """The key id of a client's key (`lk_<key id>_<secret>`): the reviewer it rates as."""
    return client.headers["authorization"].removeprefix("Bearer ").split("_")[1]


@pytest_asyncio.fixture
async def clients(api_url: str, make_key: Any) -> AsyncIterator[tuple[Tenant, Tenant]]:
    made: list[httpx.AsyncClient] = []

    async def client_for(tenant_id: str, scopes: list[str]) -> httpx.AsyncClient:
        key = await make_key(tenant_id, scopes)
        client = httpx.AsyncClient(base_url=api_url, headers={"authorization": f"Bearer {key}"}, timeout=10)
        made.append(client)
        return client

    async def tenant() -> Tenant:
        tenant_id = f"t-{uuid.uuid4().hex[:10]}"

        async def reviewer() -> tuple[httpx.AsyncClient, str]:
            client = await client_for(tenant_id, ["eval:write"])
            return client, key_id_of(client)

        return Tenant(tenant_id, await client_for(tenant_id, ["admin"]), await client_for(tenant_id, ["eval:write"]),
                      reviewer)

    yield await tenant(), await tenant()
    for client in made:
        await client.aclose()


def evaluator_body(evaluator_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": evaluator_id,
        "rubrics": ["relevance@1", "tone@2"],
        "custom_rubrics": [{"name": "tone", "version": 2, "criteria": "Polite.", "steps": ["Judge the tone."],
                            "scale_min": 1, "scale_max": 3, "labels": ["rude", "neutral", "warm"]}],
        "sample_rate": 0.1,
        "judge": {"model": "gpt-4o-mini", "base_url": "https://api.openai.com/v1", "credential": "openai"},
        "daily_spend_cap_usd": "5.00",
    }
    body.update(overrides)
    return body


async def create_evaluator(tenant: Tenant, evaluator_id: str | None = None) -> str:
    evaluator_id = evaluator_id or f"ev-{uuid.uuid4().hex[:8]}"
    response = await tenant.admin.post("/v1/evaluators", json=evaluator_body(evaluator_id))
    assert response.status_code == 201, response.text
    return evaluator_id


async def judged(pool: asyncpg.Pool, tenant: str, evaluator_id: str, raw_scores: list[int],
                 *, status: JudgeStatus = JudgeStatus.OK, first_minute: int = 0) -> list[str]:
    """Result rows for new events of `tenant`, judged `raw_scores` on relevance@1; returns the event ids."""
    rows = []
    start = datetime.now(UTC) - timedelta(hours=1) + timedelta(minutes=first_minute)
    for n, raw in enumerate(raw_scores):
        event = Interaction.model_validate({**make_event(occurred_at=(start + timedelta(minutes=n))
                                                         .isoformat()), "tenant_id": tenant})
        fields: dict[str, Any] = ({"score": RELEVANCE.normalise(raw), "raw_score": raw, "label": RELEVANCE.label(raw),
                                   "reasoning": "because"} if status is JudgeStatus.OK
                                  else {"error_type": "http_500", "error": "down"})
        result = JudgeResult(status=status, rubric=RELEVANCE.ref, judge_model="gpt-4o-mini", **fields)
        rows.append(result_row(Evaluation(event, evaluator_id, RELEVANCE, result)))
    async with pool.acquire() as conn:
        await upsert_results(conn, rows)
    return [str(r.event_id) for r in rows]


def field_of(response: httpx.Response) -> list[Any]:
    """The fields a 422 names: its problem details' `errors`."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["type"], problem["title"], problem["status"]) == ("about:blank", "Unprocessable Content", 422)
    return [e["loc"] for e in problem["errors"]]


# -- operations and auth ----------------------------------------------------------------------------


async def test_ops_endpoints_answer(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}
        await client.get("/v1/results")
        assert "llmops_evaluator_api_requests_total" in (await client.get("/metrics")).text


async def test_keys_and_scopes(api_url: str, clients: tuple[Tenant, Tenant], make_key: Any) -> None:
    a, _ = clients
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        assert (await anonymous.get("/v1/results")).status_code == 401
        ingest_only = {"authorization": f"Bearer {await make_key(a.id, ['ingest:write'])}"}
        assert (await anonymous.get("/v1/results", headers=ingest_only)).status_code == 403
    assert (await a.writer.get("/v1/evaluators")).status_code == 403  # evaluators need admin
    assert (await a.admin.get("/v1/results")).status_code == 200  # admin may do everything


async def test_every_error_is_problem_details(api_url: str, clients: tuple[Tenant, Tenant]) -> None:
    a, _ = clients
    evaluator_id = await create_evaluator(a)
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        answers = {
            401: await anonymous.get("/v1/results"),
            403: await a.writer.get("/v1/evaluators"),
            404: await a.admin.get("/v1/evaluators/nope"),
            409: await a.admin.post("/v1/evaluators", json=evaluator_body(evaluator_id)),
        }
    for status, response in answers.items():
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert set(body) == {"type", "title", "status", "detail"} and body["status"] == status, body
    assert answers[404].json() == {"type": "about:blank", "title": "Not Found", "status": 404,
                                   "detail": "no evaluator 'nope'"}
    assert answers[409].json()["detail"].startswith(f"you already have an evaluator {evaluator_id!r}")
    invalid = (await a.admin.post("/v1/evaluators", json=evaluator_body("ev-x", sample_rate=2, rubrics=[]))).json()
    assert [e["loc"] for e in invalid["errors"]] == [["body", "rubrics"], ["body", "sample_rate"]]
    assert invalid["detail"].startswith("rubrics: ") and "; sample_rate: " in invalid["detail"]


# -- evaluators -------------------------------------------------------------------------------------


async def test_evaluator_crud_is_per_tenant(clients: tuple[Tenant, Tenant]) -> None:
    a, b = clients
    evaluator_id = f"ev-{uuid.uuid4().hex[:8]}"
    created = await a.admin.post("/v1/evaluators", json=evaluator_body(evaluator_id))
    assert created.status_code == 201
    assert created.json()["tenant_id"] == a.id and created.json()["enabled"] is True
    assert created.json()["daily_spend_cap_usd"] == "5.00"

    assert (await a.admin.post("/v1/evaluators", json=evaluator_body(evaluator_id))).status_code == 409
    assert [e["id"] for e in (await a.admin.get("/v1/evaluators")).json()["items"]] == [evaluator_id]
    assert (await b.admin.get("/v1/evaluators")).json()["items"] == []
    assert (await a.admin.get(f"/v1/evaluators/{evaluator_id}")).json()["sample_rate"] == 0.1
    assert (await b.admin.get(f"/v1/evaluators/{evaluator_id}")).status_code == 404
    assert (await a.admin.get("/v1/evaluators/nope")).status_code == 404

    replaced = await a.admin.put(f"/v1/evaluators/{evaluator_id}", json=evaluator_body(evaluator_id, sample_rate=0.5))
    assert replaced.status_code == 200 and replaced.json()["sample_rate"] == 0.5
    no_id = {k: v for k, v in evaluator_body(evaluator_id, sample_rate=0.25).items() if k != "id"}
    assert (await a.admin.put(f"/v1/evaluators/{evaluator_id}", json=no_id)).json()["sample_rate"] == 0.25
    assert (await b.admin.put(f"/v1/evaluators/{evaluator_id}", json=evaluator_body(evaluator_id))).status_code == 404

    assert (await b.admin.delete(f"/v1/evaluators/{evaluator_id}")).status_code == 404
    assert (await a.admin.delete(f"/v1/evaluators/{evaluator_id}")).status_code == 204
    disabled = (await a.admin.get(f"/v1/evaluators/{evaluator_id}")).json()
    assert (disabled["enabled"], disabled["sample_rate"]) == (False, 0.25)


async def test_evaluator_validation_names_the_field(clients: tuple[Tenant, Tenant]) -> None:
    a, _ = clients
    cases = [
        (evaluator_body("ev-x", sample_rate=2), ["body", "sample_rate"]),
        (evaluator_body("ev-x", rubrics=[]), ["body", "rubrics"]),
        (evaluator_body("ev-x", judge={"model": "m", "base_url": "https://x/v1", "api_key_env": "sk-abc"}),
         ["body", "judge", "api_key_env"]),
        (evaluator_body("ev-x", judge={"model": "m", "base_url": "https://x/v1"}), ["body", "judge", "credential"]),
        (evaluator_body("ev-x", tenant_id="someone-else"), ["body", "tenant_id"]),
        ({k: v for k, v in evaluator_body("ev-x").items() if k != "daily_spend_cap_usd"},
         ["body", "daily_spend_cap_usd"]),
    ]
    for body, loc in cases:
        assert loc in field_of(await a.admin.post("/v1/evaluators", json=body)), body
    unknown = await a.admin.post("/v1/evaluators", json=evaluator_body("ev-x", rubrics=["nope@1"]))
    assert unknown.status_code == 422 and "nope" in unknown.text
    assert (await a.admin.put("/v1/evaluators/ev-y", json=evaluator_body("ev-x"))).status_code == 404
    real = await create_evaluator(a)
    assert field_of(await a.admin.put(f"/v1/evaluators/{real}", json=evaluator_body("other"))) == [["body", "id"]]
    assert (await a.admin.post("/v1/evaluators", content=b"[1, 2]",
                               headers={"content-type": "application/json"})).status_code == 422


async def test_two_tenants_may_both_have_an_evaluator_id(clients: tuple[Tenant, Tenant]) -> None:
    a, b = clients
    a_made = await a.admin.post("/v1/evaluators", json=evaluator_body("support-quality"))
    b_made = await b.admin.post("/v1/evaluators", json=evaluator_body("support-quality", sample_rate=0.5))
    assert (a_made.status_code, b_made.status_code) == (201, 201)  # on main: 409, telling b that a uses it
    assert (await a.admin.get("/v1/evaluators/support-quality")).json()["sample_rate"] == 0.1
    assert (await b.admin.get("/v1/evaluators/support-quality")).json()["sample_rate"] == 0.5
    assert (await b.admin.delete("/v1/evaluators/support-quality")).status_code == 204
    assert (await a.admin.get("/v1/evaluators/support-quality")).json()["enabled"] is True


# -- judge credentials and egress -------------------------------------------------------------------


def problem_fields(response: httpx.Response) -> list[tuple[Any, str]]:
    assert response.status_code == 422, response.text
    return [(tuple(e["loc"]), e["msg"]) for e in response.json()["errors"]]


async def test_a_tenant_cannot_have_a_variable_of_the_worker_sent_anywhere(clients: tuple[Tenant, Tenant]) -> None:
    a, _ = clients
    body = evaluator_body("ev-steal", judge={"model": "m", "base_url": "https://attacker.example/v1",
                                             "api_key_env": "LLMOPS_DATABASE_URL", "credential": "openai"})
    response = await a.admin.post("/v1/evaluators", json=body)  # on main: 201, and the worker sends it
    assert (("body", "judge", "api_key_env"), "Value error, not accepted: name a judge credential the operator "
            "granted you in `credential`") in problem_fields(response)
    # Naming the variable as a credential gets nothing either, and says nothing about the environment.
    named = evaluator_body("ev-steal", judge={"model": "m", "base_url": "https://api.openai.com/v1",
                                              "credential": "LLMOPS_DATABASE_URL"})
    response = await a.admin.post("/v1/evaluators", json=named)
    assert problem_fields(response) == [(("body", "judge", "credential"), "credential unavailable")]
    assert "postgresql" not in response.text and "not set" not in response.text


async def test_a_credential_is_usable_only_by_the_tenants_it_is_granted_to(
        clients: tuple[Tenant, Tenant], make_key: Any, api_url: str) -> None:
    a, _ = clients
    judge = {"model": "m", "base_url": "https://judge.bound.example/v1", "credential": "bound"}
    key = await make_key(BOUND, ["admin"])
    async with httpx.AsyncClient(base_url=api_url, headers={"authorization": f"Bearer {key}"}, timeout=10) as bound:
        assert (await bound.post("/v1/evaluators", json=evaluator_body("ev-bound", judge=judge))).status_code == 201
        # Its own credential, but to an endpoint it is not for: the key would leave for elsewhere.
        elsewhere = {**judge, "base_url": "https://judge.acme.example/v1"}
        response = await bound.put("/v1/evaluators/ev-bound", json=evaluator_body("ev-bound", judge=elsewhere))
        assert problem_fields(response) == [(("body", "judge", "base_url"), "credential unavailable")]
    theirs = await a.admin.post("/v1/evaluators", json=evaluator_body("ev-bound", judge=judge))
    unknown = await a.admin.post("/v1/evaluators", json=evaluator_body("ev-bound", judge={**judge, "credential": "x"}))
    # Granted to another tenant or not declared at all: the same answer, so a tenant learns nothing of others'.
    assert problem_fields(theirs) == problem_fields(unknown) == [(("body", "judge", "credential"),
                                                                  "credential unavailable")]
    assert theirs.json()["detail"] == unknown.json()["detail"]


@pytest.mark.parametrize("base_url", [
    "http://127.0.0.1:5432/v1",  # Postgres, on the worker's loopback
    "http://169.254.169.254/",  # the cloud metadata service
    "http://judge.internal.example/v1",  # a name with one private address among its public ones
    "http://[::ffff:127.0.0.1]:6379/v1",  # Redis, as an IPv4-mapped IPv6 address
    "http://nowhere.example/v1",  # a name that does not resolve: the same answer
])
async def test_a_base_url_the_worker_may_not_reach_is_refused_at_create_time(
        clients: tuple[Tenant, Tenant], base_url: str) -> None:
    a, _ = clients
    body = evaluator_body("ev-ssrf", judge={"model": "m", "base_url": base_url, "credential": "careless"})
    response = await a.admin.post("/v1/evaluators", json=body)  # on main: 201
    assert problem_fields(response) == [(("body", "judge", "base_url"), "destination not allowed")]
    made = await a.admin.post("/v1/evaluators", json=evaluator_body("ev-ssrf"))
    assert made.status_code == 201  # a public endpoint is fine
    replaced = await a.admin.put("/v1/evaluators/ev-ssrf", json=body)
    assert problem_fields(replaced) == [(("body", "judge", "base_url"), "destination not allowed")]


async def test_an_allowed_private_destination_is_accepted(clients: tuple[Tenant, Tenant]) -> None:
    a, _ = clients  # LLMOPS_EGRESS_ALLOW=127.0.0.1:8099 (as the local stack's fake LLM)
    body = evaluator_body("ev-local", judge={"model": "m", "base_url": "http://127.0.0.1:8099/v1",
                                             "credential": "careless"})
    assert (await a.admin.post("/v1/evaluators", json=body)).status_code == 201


# -- feedback ---------------------------------------------------------------------------------------


async def test_feedback_takes_a_score_or_a_label_and_replaces_a_reviewers_earlier_one(
        clients: tuple[Tenant, Tenant], pg_pool: asyncpg.Pool) -> None:
    a, b = clients
    evaluator_id = await create_evaluator(a)
    (event_id,) = await judged(pg_pool, a.id, evaluator_id, [4])

    first = await a.writer.post("/v1/feedback", json={"event_id": event_id, "rubric": "relevance@1", "score": 4,
                                                      "comment": "fine"})
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["score"], body["normalised_score"], body["label"], body["reviewer"]) == \
        (4, 0.75, "mostly_relevant", a.writer_key_id)  # the reviewer is the key
    again = await a.writer.post("/v1/feedback", json={"event_id": event_id, "rubric": "relevance@1",
                                                      "label": "relevant"})
    assert again.status_code == 200 and (again.json()["id"], again.json()["score"]) == (body["id"], 5)
    custom = await a.writer.post("/v1/feedback", json={"event_id": event_id, "rubric": "tone@2", "label": "warm"})
    assert custom.status_code == 201 and (custom.json()["score"], custom.json()["normalised_score"]) == (3, 1.0)
    other, other_id = await a.reviewer()
    second = await other.post("/v1/feedback", json={"event_id": event_id, "rubric": "relevance@1", "score": 1})
    assert second.status_code == 201 and second.json()["reviewer"] == other_id  # a second person, a second row
    named = await other.post("/v1/feedback", json={"event_id": event_id, "rubric": "relevance@1", "score": 2,
                                                   "reviewer": a.writer_key_id})
    assert field_of(named) == [["body", "reviewer"]]  # nobody rates in another reviewer's name
    count = await pg_pool.fetchval("SELECT count(*) FROM human_feedback WHERE tenant_id = $1", a.id)
    assert count == 3

    def post(**fields: Any) -> Any:
        return a.writer.post("/v1/feedback", json={"event_id": event_id, "rubric": "relevance@1", **fields})

    assert field_of(await post(score=9)) == [["body", "score"]]
    assert field_of(await post(score=0)) == [["body", "score"]]
    assert field_of(await post(label="superb")) == [["body", "label"]]
    assert field_of(await post(score=5, label="irrelevant")) == [["body", "label"]]
    assert field_of(await post()) == [["body", "score"]]
    assert field_of(await post(score="4")) == [["body", "score"]]  # strict: an integer
    assert field_of(await post(rubric="tone@9", score=1)) == [["body", "rubric"]]
    assert field_of(await post(rubric="Relevance", score=1)) == [["body", "rubric"]]
    assert ["body", "event_id"] in field_of(await a.writer.post("/v1/feedback", json={
        "event_id": "not-a-uuid", "rubric": "relevance@1", "score": 3}))
    assert ["body", "extra"] in field_of(await post(score=3, extra=1))
    # Another tenant's event, or one never judged: 404. Another tenant's custom rubric: unknown.
    assert (await b.writer.post("/v1/feedback", json={"event_id": event_id, "rubric": "relevance@1",
                                                      "score": 3})).status_code == 404
    assert (await post(event_id=str(uuid.uuid4()), score=3)).status_code == 404
    assert field_of(await b.writer.post("/v1/feedback", json={"event_id": event_id, "rubric": "tone@2",
                                                              "score": 1})) == [["body", "rubric"]]


# -- the review queue -------------------------------------------------------------------------------


async def test_the_review_queue_hands_out_items_with_a_lock(clients: tuple[Tenant, Tenant],
                                                            pg_pool: asyncpg.Pool) -> None:
    a, b = clients
    evaluator_id = await create_evaluator(a)
    events = await judged(pg_pool, a.id, evaluator_id, [2, 4, 5])
    await enqueue_for_review(pg_pool, [
        ReviewEntry(a.id, uuid.UUID(events[0]), evaluator_id, "relevance@1", "random_sample", 0),
        ReviewEntry(a.id, uuid.UUID(events[1]), evaluator_id, "relevance@1", "low_score", 10),
        ReviewEntry(a.id, uuid.UUID(events[2]), evaluator_id, "relevance@1", "random_sample", 0),
    ])

    people = {name: await a.reviewer() for name in ("alice", "bob", "carol", "dave", "erin")}
    ids = {name: key_id for name, (_, key_id) in people.items()}

    async def take(person: str, **options: Any) -> httpx.Response:
        return await people[person][0].post("/v1/review/next", json=options)

    async def submit(person: str, item_id: int, **rating: Any) -> httpx.Response:
        return await people[person][0].post(f"/v1/review/{item_id}/submit", json=rating)

    alice = (await take("alice", lock_minutes=5)).json()
    assert (alice["event_id"], alice["reason"], alice["lock_owner"]) == (events[1], "low_score", ids["alice"])
    assert alice["rubric_detail"]["labels"][0] == "irrelevant" and "score" not in alice  # blind: no judge score
    taken_at = CLOCK.at
    assert datetime.fromisoformat(alice["lock_expires_at"]) == taken_at + timedelta(minutes=5)
    again = (await take("alice", lock_minutes=5)).json()
    assert (again["item_id"], again["lock_expires_at"]) == (alice["item_id"], alice["lock_expires_at"])  # the same
    bob = (await take("bob")).json()
    carol = (await take("carol")).json()
    assert {bob["event_id"], carol["event_id"]} == {events[0], events[2]}
    assert (await take("dave")).status_code == 204  # everything is locked by someone else
    assert (await b.writer.post("/v1/review/next")).status_code == 204  # another tenant sees nothing
    assert field_of(await take("dave", reviewer=ids["alice"])) == [["body", "reviewer"]]  # no taking a name

    CLOCK.at = taken_at + timedelta(minutes=4, seconds=59)
    assert (await take("dave")).status_code == 204  # alice's lock holds until its last second
    # Alice's lock expires: the item is handed to dave; alice can no longer submit it.
    CLOCK.at = taken_at + timedelta(minutes=5)
    dave = (await take("dave")).json()
    assert dave["item_id"] == alice["item_id"]
    refused = await submit("alice", alice["item_id"], score=1)
    assert refused.status_code == 409 and "another reviewer" in refused.text
    assert field_of(await submit("dave", alice["item_id"], score=7)) == [["body", "score"]]
    assert (await b.writer.post(f"/v1/review/{alice['item_id']}/submit", json={"score": 1})).status_code == 404
    done = await submit("dave", alice["item_id"], label="irrelevant", comment="off topic")
    assert done.status_code == 200, done.text
    assert (done.json()["item"]["status"], done.json()["item"]["completed_by"]) == ("done", ids["dave"])
    assert datetime.fromisoformat(done.json()["item"]["completed_at"]) == CLOCK.at  # the API's clock, not Postgres's
    assert (done.json()["feedback"]["score"], done.json()["feedback"]["reviewer"]) == (1, ids["dave"])
    assert (await submit("dave", alice["item_id"], score=1)).status_code == 409  # done
    assert (await take("dave")).status_code == 204
    assert (await submit("erin", bob["item_id"], score=3)).status_code == 409  # bob holds it
    assert (await a.writer.post("/v1/review/999999999/submit", json={"score": 3})).status_code == 404
    assert ["body", "lock_minutes"] in field_of(await take("erin", lock_minutes=0))
    feedback = await pg_pool.fetch("SELECT reviewer, score, comment FROM human_feedback WHERE tenant_id = $1", a.id)
    assert [(f["reviewer"], f["score"], f["comment"]) for f in feedback] == [(ids["dave"], 0.0, "off topic")]


async def test_two_reviewers_asking_at_once_never_get_the_same_item(clients: tuple[Tenant, Tenant],
                                                                    pg_pool: asyncpg.Pool) -> None:
    import asyncio

    a, _ = clients
    evaluator_id = await create_evaluator(a)
    events = await judged(pg_pool, a.id, evaluator_id, [3] * 6)
    await enqueue_for_review(pg_pool, [ReviewEntry(a.id, uuid.UUID(e), evaluator_id, "relevance@1", "random_sample", 0)
                                       for e in events])
    people = [(await a.reviewer())[0] for _ in range(8)]
    answers = await asyncio.gather(*(person.post("/v1/review/next") for person in people))
    items = [r.json()["item_id"] for r in answers if r.status_code == 200]
    assert len(items) == 6 == len(set(items))
    assert sorted(r.status_code for r in answers) == [200] * 6 + [204] * 2


# -- agreement --------------------------------------------------------------------------------------


async def test_the_agreement_report_pairs_judge_and_people_on_the_rubric_scale(
        clients: tuple[Tenant, Tenant], pg_pool: asyncpg.Pool) -> None:
    a, b = clients
    evaluator_id = await create_evaluator(a)
    judge_scores = [5, 4, 4, 2, 1, 3]
    human_scores = [5, 4, 3, 2, 2, 3]
    events = await judged(pg_pool, a.id, evaluator_id, judge_scores)
    for event_id, score in zip(events, human_scores, strict=True):
        response = await a.writer.post("/v1/feedback", json={"event_id": event_id, "rubric": "relevance@1",
                                                              "score": score})
        assert response.status_code == 201
    # Feedback on another rubric, and on an event whose judgment failed, is not paired.
    await a.writer.post("/v1/feedback", json={"event_id": events[0], "rubric": "safety@1", "score": 1})
    (failed,) = await judged(pg_pool, a.id, evaluator_id, [0], status=JudgeStatus.ERROR)
    await a.writer.post("/v1/feedback", json={"event_id": failed, "rubric": "relevance@1", "score": 1})

    report = (await a.writer.get("/v1/agreement", params={"rubric": "relevance@1"})).json()
    # Worked out by hand (not with the code under test). Pairs (judge, human): (5,5) (4,4) (4,3) (2,2)
    # (1,2) (3,3): 4 of 6 agree. Judge counts 1:1 2:1 3:1 4:2 5:1, human counts 2:2 3:2 4:1 5:1, so chance
    # agreement is (0 + 1x2 + 1x2 + 2x1 + 1x1) / 36 = 7/36 and kappa = (24/36 - 7/36) / (29/36) = 17/29.
    # Quadratic weights (i - j)^2 (the common 1/16 cancels): observed 1 + 1 = 2 over 6 pairs, i.e. 12 over
    # 36 cells; expected sum of n_judge(i) n_human(j) (i - j)^2 = 35 + 15 + 7 + 22 + 27 = 106 over 36:
    # weighted kappa = 1 - 12/106 = 47/53.
    # Ranks: judge [6, 4.5, 4.5, 2, 1, 3], human [6, 5, 3.5, 1.5, 1.5, 3.5], both of mean 3.5; deviations
    # multiply to 15.75, square to 17 and 16.5: Spearman = 15.75 / sqrt(17 x 16.5).
    assert report["count"] == 6 and report["scale"] == [1, 5]
    assert report["percent_agreement"] == pytest.approx(4 / 6)
    assert report["cohens_kappa"] == pytest.approx(17 / 29)
    assert report["weighted_kappa"] == pytest.approx(47 / 53)
    assert report["spearman"] == pytest.approx(15.75 / math.sqrt(17 * 16.5))
    assert [e["evaluator_id"] for e in report["by_evaluator"]] == [evaluator_id]
    by_one = (await a.writer.get("/v1/agreement", params={"rubric": "relevance@1", "evaluator_id": "other"})).json()
    assert (by_one["count"], by_one["percent_agreement"], by_one["cohens_kappa"]) == (0, None, None)

    other = (await b.writer.get("/v1/agreement", params={"rubric": "relevance@1"})).json()
    assert (other["count"], other["by_evaluator"]) == (0, [])
    assert field_of(await a.writer.get("/v1/agreement")) == [["query", "rubric"]]
    assert field_of(await a.writer.get("/v1/agreement", params={"rubric": "nope@1"})) == [["query", "rubric"]]
    assert field_of(await b.writer.get("/v1/agreement", params={"rubric": "tone@2"})) == [["query", "rubric"]]
    assert (await a.writer.get("/v1/agreement", params={"rubric": "tone@2"})).json()["scale"] == [1, 3]


# -- results ----------------------------------------------------------------------------------------


async def test_results_are_filtered_and_paginated_newest_first(clients: tuple[Tenant, Tenant],
                                                               pg_pool: asyncpg.Pool) -> None:
    a, b = clients
    evaluator_id = await create_evaluator(a)
    events = await judged(pg_pool, a.id, evaluator_id, [1, 2, 3, 4, 5, 3, 2])
    (failed,) = await judged(pg_pool, a.id, evaluator_id, [0], status=JudgeStatus.ERROR, first_minute=30)

    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await a.writer.get("/v1/results", params=params)).json()
        seen.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [r["event_id"] for r in seen] == list(reversed([*events, failed]))  # newest first, each once
    assert all(r["tenant_id"] == a.id for r in seen)

    one = (await a.writer.get("/v1/results", params={"event_id": events[2]})).json()["items"]
    assert [(r["raw_score"], r["label"], r["reasoning"]) for r in one] == [(3, "partially_relevant", "because")]
    errors = (await a.writer.get("/v1/results", params={"status": "error"})).json()["items"]
    assert [(r["event_id"], r["error_type"]) for r in errors] == [(failed, "http_500")]
    assert len((await a.writer.get("/v1/results", params={"rubric": "relevance"})).json()["items"]) == 8
    assert len((await a.writer.get("/v1/results", params={"rubric": "relevance@2"})).json()["items"]) == 0
    assert len((await a.writer.get("/v1/results", params={"evaluator_id": evaluator_id, "limit": 500})
                ).json()["items"]) == 8
    since = seen[2]["occurred_at"]
    assert len((await a.writer.get("/v1/results", params={"since": since})).json()["items"]) == 3

    assert (await a.writer.get(f"/v1/results/{events[0]}")).status_code == 200
    assert (await b.writer.get(f"/v1/results/{events[0]}")).status_code == 404
    assert (await b.writer.get("/v1/results", params={"event_id": events[0]})).json() == \
        {"items": [], "next_cursor": None}
    assert field_of(await a.writer.get("/v1/results", params={"cursor": "garbage"})) == [["query", "cursor"]]
    assert field_of(await a.writer.get("/v1/results", params={"status": "great"})) == [["query", "status"]]
    assert field_of(await a.writer.get("/v1/results", params={"limit": 0})) == [["query", "limit"]]
    assert field_of(await a.writer.get("/v1/results", params={"event_id": "x"})) == [["query", "event_id"]]
