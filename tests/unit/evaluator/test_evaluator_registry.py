"""The worker's evaluator registry and decode step, without a database (a stand-in for the pool)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmops_evaluator.credentials import CREDENTIALS, JudgeCredentials
from llmops_evaluator.registry import EvaluatorRegistry
from llmops_evaluator.settings import EvaluatorSettings
from llmops_evaluator.worker import EvaluatorHandler, EventWork
from llmops_shared.contract import BadEvent, Interaction
from llmops_shared.worker import Message
from tests.support.events import make_event


def config(evaluator_id: str, tenant: str = "acme", **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": evaluator_id, "tenant_id": tenant, "rubrics": ["relevance@1"], "sample_rate": 1.0,
        "judge": {"model": "judge-1", "base_url": "http://127.0.0.1:9/v1", "credential": "shared"},
        "daily_spend_cap_usd": "5", "max_concurrency": 2,
    }
    raw.update(overrides)
    return raw


# The operator's grants: `shared` to every tenant, `acme-only` to acme, each for the judge's endpoint only.
CREDENTIALS_JSON = {
    "shared": {"key_env": "JUDGE_KEY", "base_urls": ["http://127.0.0.1:9/v1"], "tenants": ["*"]},
    "acme-only": {"key_env": "ACME_KEY", "base_urls": ["http://127.0.0.1:9/v1"], "tenants": ["acme"]},
}


def credentials(environ: dict[str, str] | None = None) -> JudgeCredentials:
    return JudgeCredentials(CREDENTIALS.validate_python(CREDENTIALS_JSON),
                            environ={"JUDGE_KEY": "k", "ACME_KEY": "a"} if environ is None else environ)


def settings(**values: Any) -> EvaluatorSettings:
    return EvaluatorSettings(credentials=CREDENTIALS_JSON, **values)


class Rows:
    """What `pool.fetch` answers: `tenant_id`, `evaluator_id` and `config` (JSON text, as asyncpg returns jsonb)."""

    def __init__(self, *configs: dict[str, Any]) -> None:
        self.configs = list(configs)

    async def fetch(self, _query: str, *_args: Any) -> list[dict[str, Any]]:
        return [{"tenant_id": c["tenant_id"], "evaluator_id": c["id"], "config": orjson.dumps(c).decode()}
                for c in self.configs]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def interaction(tenant: str = "acme") -> Interaction:
    return Interaction.model_validate({**make_event(), "tenant_id": tenant})


async def test_the_registry_loads_reloads_and_keeps_what_did_not_change() -> None:
    clock = Clock()
    registry = EvaluatorRegistry(settings(evaluators_refresh_s=30), cache=None, ledger=None,
                                 credentials=credentials(), clock=clock)
    rows = Rows(config("ev-a"), config("ev-b", tenant="globex"), config("ev-off", enabled=False))
    await registry.refresh(rows)  # type: ignore[arg-type]
    assert len(registry) == 3
    assert [a.config.id for a in registry.selecting(interaction())] == ["ev-a"]  # enabled, same tenant
    assert [a.config.id for a in registry.selecting(interaction("globex"))] == ["ev-b"]
    first = registry.get("acme", "ev-a")
    assert first is not None and first.scorer is not None and first.slot is not None
    assert first.slot.gate._value == 4  # judgments in progress: 2 x the HTTP cap

    rows.configs[0] = config("ev-a", sample_rate=0.0)
    await registry.refresh(rows)  # type: ignore[arg-type]
    assert registry.get("acme", "ev-a") is first  # not due yet
    clock.now += 31
    await registry.refresh(rows)  # type: ignore[arg-type]
    changed = registry.get("acme", "ev-a")
    assert changed is not first and changed is not None and changed.config.sample_rate == 0.0
    assert registry.selecting(interaction()) == []
    unchanged = registry.get("globex", "ev-b")
    await registry.refresh(rows, force=True)  # type: ignore[arg-type]
    assert registry.get("globex", "ev-b") is unchanged

    # A config that stops validating keeps the version loaded before; one never valid is not loaded.
    rows.configs[1] = {**config("ev-b", tenant="globex"), "rubrics": ["nope@1"]}
    rows.configs.append({**config("ev-new"), "sample_rate": 7})
    await registry.refresh(rows, force=True)  # type: ignore[arg-type]
    assert registry.get("globex", "ev-b") is unchanged and registry.get("acme", "ev-new") is None
    rows.configs = []
    await registry.refresh(rows, force=True)  # type: ignore[arg-type]
    assert len(registry) == 0
    await registry.close()


class Watcher:
    """A stand-in for `ConfigWatcher`: a stamp per table that the test moves, and a connection state."""

    def __init__(self) -> None:
        self.connected = True
        self.counts: dict[str, int] = {}

    def stamp(self, tables: Any) -> tuple[int, ...]:
        return tuple(self.counts.get(t, 0) for t in tables)

    def notify(self, table: str) -> None:
        self.counts[table] = self.counts.get(table, 0) + 1


async def test_a_change_to_the_evaluators_is_read_before_the_next_batch_however_recent_the_last_read() -> None:
    clock, watcher = Clock(), Watcher()
    registry = EvaluatorRegistry(settings(evaluators_refresh_s=30), cache=None, ledger=None,
                                 credentials=credentials(), clock=clock, watcher=watcher)  # type: ignore[arg-type]
    rows = Rows()
    assert await registry.refresh(rows)  # type: ignore[arg-type]
    assert len(registry) == 0  # a worker started before any evaluator existed

    rows.configs.append(config("ev-a"))
    assert not await registry.refresh(rows)  # type: ignore[arg-type]  # nothing notified: not read again
    watcher.notify("budgets")  # another table's change is not ours
    assert not await registry.refresh(rows)  # type: ignore[arg-type]
    watcher.notify("evaluators")  # the commit's notification: read at once, 30 s or not
    assert await registry.refresh(rows)  # type: ignore[arg-type]
    assert registry.get("acme", "ev-a") is not None
    assert not await registry.refresh(rows)  # type: ignore[arg-type]

    clock.now += 3600  # connected: no periodic re-read, the notifications say when
    assert not await registry.refresh(rows)  # type: ignore[arg-type]
    await registry.close()


async def test_while_the_watcher_is_disconnected_the_evaluators_are_reread_periodically() -> None:
    clock, watcher = Clock(), Watcher()
    watcher.connected = False
    registry = EvaluatorRegistry(settings(evaluators_refresh_s=30), cache=None, ledger=None,
                                 credentials=credentials(), clock=clock, watcher=watcher)  # type: ignore[arg-type]
    rows = Rows()
    assert await registry.refresh(rows)  # type: ignore[arg-type]
    rows.configs.append(config("ev-a"))
    watcher.notify("evaluators")  # (not delivered while disconnected: only the clock counts)
    assert not await registry.refresh(rows)  # type: ignore[arg-type]
    clock.now += 30
    assert await registry.refresh(rows)  # type: ignore[arg-type]
    assert registry.get("acme", "ev-a") is not None

    watcher.connected = True  # reconnected: its stamp moved since the last read (as the epoch does)
    watcher.notify("evaluators")
    assert await registry.refresh(rows)  # type: ignore[arg-type]
    assert not await registry.refresh(rows)  # type: ignore[arg-type]
    await registry.close()


async def test_a_new_version_keeps_the_judge_client_unless_the_judge_or_cap_changed() -> None:
    registry = EvaluatorRegistry(settings(), cache=None, ledger=None, credentials=credentials())
    rows = Rows(config("ev-a"))
    await registry.refresh(rows, force=True)  # type: ignore[arg-type]
    first = registry.get("acme", "ev-a")
    assert first is not None and first.slot is not None
    in_use = registry.acquire([first])  # a batch is judging with it

    rows.configs = [config("ev-a", sample_rate=0.5, rubrics=["relevance@1", "safety@1"])]
    await registry.refresh(rows, force=True)  # type: ignore[arg-type]
    second = registry.get("acme", "ev-a")
    assert second is not None and second is not first and second.slot is first.slot  # same client, same cap
    assert [r.ref for r in second.rubrics] == ["relevance@1", "safety@1"]

    rows.configs = [config("ev-a", max_concurrency=8)]
    await registry.refresh(rows, force=True)  # type: ignore[arg-type]
    third = registry.get("acme", "ev-a")
    assert third is not None and third.slot is not None and third.slot is not first.slot
    assert first.slot.retired and not first.slot.client._client.is_closed()  # still in use by the batch
    await registry.release(in_use)
    assert first.slot.client._client.is_closed()  # closed once the batch is done
    await registry.close()
    assert third.slot.client._client.is_closed()


async def test_an_evaluator_whose_credential_is_unavailable_is_loaded_saying_only_that() -> None:
    # Not granted to the tenant, not declared, not for the evaluator's endpoint, its key variable not set: the
    # tenant's rows say "credential unavailable", never which variable or which tenant the credential is for.
    registry = EvaluatorRegistry(settings(), cache=None, ledger=None, credentials=credentials({"ACME_KEY": "a"}))
    rows = Rows(config("ev-ok", judge={"model": "j", "base_url": "http://127.0.0.1:9/v1", "credential": "acme-only"}),
                config("ev-unset"),  # `shared`: JUDGE_KEY is not set
                config("ev-theirs", tenant="globex",
                       judge={"model": "j", "base_url": "http://127.0.0.1:9/v1", "credential": "acme-only"}),
                config("ev-none", judge={"model": "j", "base_url": "http://127.0.0.1:9/v1",
                                         "credential": "LLMOPS_DATABASE_URL"}),
                config("ev-elsewhere", judge={"model": "j", "base_url": "https://attacker.example/v1",
                                              "credential": "acme-only"}))
    await registry.refresh(rows, force=True)  # type: ignore[arg-type]
    ok = registry.get("acme", "ev-ok")
    assert ok is not None and ok.scorer is not None and ok.problem is None
    for tenant, evaluator_id in (("acme", "ev-unset"), ("globex", "ev-theirs"), ("acme", "ev-none"),
                                 ("acme", "ev-elsewhere")):
        active = registry.get(tenant, evaluator_id)
        assert active is not None and active.scorer is None and active.slot is None
        assert active.problem == "credential unavailable"
    assert len(registry.selecting(interaction())) == 4  # their judgments become explicit errors
    await registry.close()


async def test_two_tenants_may_have_the_same_evaluator_id() -> None:
    registry = EvaluatorRegistry(settings(), cache=None, ledger=None, credentials=credentials())
    await registry.refresh(Rows(config("support-quality"), config("support-quality", tenant="globex",
                                                                  max_concurrency=3)), force=True)  # type: ignore[arg-type]
    acme, globex = registry.get("acme", "support-quality"), registry.get("globex", "support-quality")
    assert acme is not None and globex is not None and acme is not globex and len(registry) == 2
    assert acme.slot is not globex.slot  # each its own client and cap
    assert [a.config.max_concurrency for a in registry.selecting(interaction("globex"))] == [3]
    assert [a.config.max_concurrency for a in registry.selecting(interaction("acme"))] == [2]
    await registry.close()


def test_decode_is_pure_and_raises_bad_event() -> None:
    decoding = EvaluatorSettings(topic="llm.interactions.raw", group="g-1")
    handler = EvaluatorHandler(decoding, EvaluatorRegistry(decoding, cache=None, ledger=None), None)
    assert (handler.name, list(handler.topics)) == ("g-1", ["llm.interactions.raw"])
    event = {**make_event(), "tenant_id": "acme"}
    work = handler.decode(Message("t", 0, 1, None, orjson.dumps(event), 0))
    assert isinstance(work, EventWork) and str(work.event_id) == event["event_id"] and work.tenant_id == "acme"
    assert work.evaluations == ()
    for bad in (b"{not json", orjson.dumps({**event, "schema_version": 9}), orjson.dumps({"tenant_id": "acme"})):
        with pytest.raises(BadEvent):
            handler.decode(Message("t", 0, 1, None, bad, 0))


async def test_a_change_to_the_credentials_file_takes_effect_without_a_restart(tmp_path: Any) -> None:
    """The operator grants, revokes or rotates a judge credential by editing its file: the next batch's
    check sees it and every judge is rebuilt; a broken edit keeps what was in force."""
    path = tmp_path / "credentials.json"
    path.write_text(orjson.dumps({"shared": {"key": "k-1", "base_urls": ["http://127.0.0.1:9/v1"],
                                             "tenants": ["globex"]}}).decode())
    clock = Clock()
    registry = EvaluatorRegistry(EvaluatorSettings(credentials_file=path, evaluators_refresh_s=30), cache=None,
                                 ledger=None, clock=clock)
    rows = Rows(config("ev-a"))
    await registry.refresh(rows)  # type: ignore[arg-type]
    before = registry.get("acme", "ev-a")
    assert before is not None and before.problem == "credential unavailable"  # granted to globex only

    def write(credentials: dict[str, Any]) -> None:
        path.write_text(orjson.dumps(credentials).decode())
        clock.now += 1  # not enough for the periodic refresh (30 s): only the file change makes it due

    write({"shared": {"key": "k-2", "base_urls": ["http://127.0.0.1:9/v1"], "tenants": ["acme"]}})
    assert registry.due()
    assert await registry.refresh(rows)  # type: ignore[arg-type]
    granted = registry.get("acme", "ev-a")
    assert granted is not None and granted.problem is None and granted.slot is not None
    assert granted.slot.client._client.api_key == "k-2"

    path.write_text("{not json")
    clock.now += 1
    assert not registry.due()  # logged; the credentials read before stay in force
    assert registry.get("acme", "ev-a") is granted

    write({"shared": {"key": "k-3", "base_urls": ["http://127.0.0.1:9/v1"], "tenants": ["acme"]}})
    assert await registry.refresh(rows)  # type: ignore[arg-type]
    rotated = registry.get("acme", "ev-a")
    assert rotated is not None and rotated is not granted and rotated.slot is not None
    assert rotated.slot.client._client.api_key == "k-3" and granted.slot.retired
    await registry.close()
