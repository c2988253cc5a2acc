"""The evaluators a worker judges with: each enabled config with its judge client, scorer and gate.

Re-read from Postgres before a batch is judged whenever the `evaluators` table changed: a change notifies
the channel `llmops_config` when it commits (migration evaluator/0003), the process's `ConfigWatcher`
counts it, and `refresh` reloads when the watcher's stamp moved, so a change made through the API, the CLI
or plain SQL is in force for the next batch, within a second. While the watcher is not connected (it
reconnects on its own, and its stamp then moves: one reload), the registry falls back to re-reading every
`evaluators_refresh_s`. A config that no longer validates is logged and the version loaded before it kept;
a judge that cannot be set up (its credential is not granted to the tenant, not for its endpoint, or its key
is not set) yields explicit `judge_unavailable` error results, "credential unavailable", for what that
evaluator selects; the reason is logged for the operator only. Evaluators are keyed by (tenant, id): two
tenants may both have `support-quality`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from prometheus_client import Gauge
from pydantic import ValidationError

from llmops_evaluator.cache import JudgmentCache
from llmops_evaluator.config import EvaluatorConfig, selects
from llmops_evaluator.credentials import CREDENTIAL_UNAVAILABLE, CredentialUnavailable, JudgeCredentials
from llmops_evaluator.evaluator_store import enabled_evaluator_rows
from llmops_evaluator.judge_client import EndpointCapabilities, JudgeClient
from llmops_evaluator.rubrics import Rubric, resolve_rubric
from llmops_evaluator.scorer import Scorer
from llmops_evaluator.settings import EvaluatorSettings
from llmops_evaluator.spend import SpendLedger
from llmops_shared.config_changes import ConfigWatcher
from llmops_shared.contract import Interaction
from llmops_shared.egress import EgressPolicy, egress_policy

log = logging.getLogger("llmops_evaluator.registry")

EVALUATORS = Gauge("llmops_evaluator_active_evaluators", "Enabled evaluators loaded by the worker")
CONFIG_TABLES = ("evaluators",)  # what the registry is loaded from: a change to it triggers a reload


@dataclass(eq=False)
class JudgeSlot:
    """One judge client and the gate of judgments in progress with it.

    Shared by successive versions of an evaluator whose judge and cap did not change, so that a config
    change (a sample rate, a rubric) never opens a second set of connections next to the first: the cap
    holds across it. A slot no longer used by the loaded configs is closed once no batch judges with it.
    """

    client: JudgeClient
    gate: asyncio.Semaphore
    users: int = 0  # batches judging with it now
    retired: bool = False  # no loaded config uses it any more


@dataclass(eq=False)
class ActiveEvaluator:
    config: EvaluatorConfig
    rubrics: list[Rubric]
    scorer: Scorer | None  # None: the judge cannot be set up (`problem` says why)
    problem: str | None
    slot: JudgeSlot | None


EvaluatorKey = tuple[str, str]  # (tenant, evaluator id): ids are the tenant's own
SlotKey = tuple[str, str, str, int]  # tenant, evaluator id, judge spec (JSON), cap


class EvaluatorRegistry:
    """The enabled evaluators, each with its judge client and scorer; re-read from Postgres when they change
    (`watcher`), or periodically while the watcher is disconnected or absent.

    A config that no longer validates is logged and the version loaded before it kept. A judge whose
    credential is unavailable yields explicit `judge_unavailable` error results for what that evaluator
    selects. Judge clients connect through `egress` (`LLMOPS_EGRESS_ALLOW`): a tenant's judge reaches the
    public internet and what the operator allowed, nothing else.
    A new version of an evaluator applies from the next batch; a batch already judging finishes with the
    version it started with (`acquire` / `release`). If the new version changes the judge or its cap, the
    old client's last calls may overlap the new one's for the rest of that batch.
    """

    def __init__(self, settings: EvaluatorSettings, *, cache: JudgmentCache | None, ledger: SpendLedger | None,
                 environ: Mapping[str, str] | None = None, clock: Any = time.monotonic,
                 watcher: ConfigWatcher | None = None, credentials: JudgeCredentials | None = None,
                 egress: EgressPolicy | None = None) -> None:
        self.settings = settings
        self.watcher = watcher
        self.cache = cache
        self.ledger = ledger
        self.credentials = credentials or settings.judge_credentials(environ=environ)
        self.egress = egress or egress_policy(settings)
        self.capabilities = EndpointCapabilities()
        self._clock = clock
        self._by_id: dict[EvaluatorKey, ActiveEvaluator] = {}
        self._by_tenant: dict[str, list[ActiveEvaluator]] = {}
        self._slots: dict[SlotKey, JudgeSlot] = {}
        self._loaded_at: float | None = None
        self._loaded_stamp: tuple[int, ...] | None = None  # the watcher's stamp when last read
        self._credentials_version = self.credentials.version  # the credentials the judges were built with

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, tenant_id: str, evaluator_id: str) -> ActiveEvaluator | None:
        return self._by_id.get((tenant_id, evaluator_id))

    def selecting(self, interaction: Interaction) -> list[ActiveEvaluator]:
        return [a for a in self._by_tenant.get(interaction.tenant_id, ()) if selects(a.config, interaction)]

    def due(self) -> bool:
        """Whether the evaluators may have changed since they were read: the watcher's stamp moved, or (while
        it is not connected) `evaluators_refresh_s` went by."""
        if self._loaded_at is None:
            return True
        self.credentials.reload()  # the operator's credentials file changed: every judge is rebuilt
        if self.credentials.version != self._credentials_version:
            return True
        if self.watcher is not None and self.watcher.connected:
            return self.watcher.stamp(CONFIG_TABLES) != self._loaded_stamp
        return self._clock() - self._loaded_at >= self.settings.evaluators_refresh_s

    async def refresh(self, pool: asyncpg.Pool | asyncpg.Connection, *, force: bool = False) -> bool:
        """Re-read the evaluators if they may have changed (or `force`); True when they were read."""
        if not force and not self.due():
            return False
        now = self._clock()
        stamp = self.watcher.stamp(CONFIG_TABLES) if self.watcher is not None else None  # before the read
        rows = await enabled_evaluator_rows(conn=pool)
        self.credentials.reload()
        rebuild = self.credentials.version != self._credentials_version
        if rebuild:  # new credentials: no judge client is kept (its key may be the old one)
            self._credentials_version = self.credentials.version
            retired, self._slots = self._slots, {}
            for slot in retired.values():
                slot.retired = True
                if slot.users == 0:
                    await slot.client.close()
        fresh: dict[EvaluatorKey, ActiveEvaluator] = {}
        for row in rows:
            key = (row["tenant_id"], row["evaluator_id"])
            try:
                raw = row["config"]
                config = EvaluatorConfig.model_validate(orjson.loads(raw) if isinstance(raw, str | bytes) else raw)
                if (config.tenant_id, config.id) != key:
                    raise ValueError(f"the config says tenant {config.tenant_id!r}, id {config.id!r}")
            except (ValidationError, ValueError) as exc:
                log.error("an evaluator's config does not validate; keeping the version loaded before, if any",
                          extra={"tenant_id": key[0], "evaluator_id": key[1], "error": str(exc)[:500]})
                if key in self._by_id:
                    fresh[key] = self._by_id[key]
                continue
            current = self._by_id.get(key)
            keep = current is not None and current.config == config and not rebuild
            fresh[key] = current if keep and current is not None else self._build(config)
        self._by_id = fresh
        by_tenant: dict[str, list[ActiveEvaluator]] = defaultdict(list)
        for active in fresh.values():
            by_tenant[active.config.tenant_id].append(active)
        self._by_tenant = dict(by_tenant)
        in_use = {_slot_key(a.config) for a in fresh.values() if a.slot is not None}
        for slot_key, slot in list(self._slots.items()):
            if slot_key not in in_use:
                del self._slots[slot_key]
                slot.retired = True
                if slot.users == 0:
                    await slot.client.close()
        self._loaded_at, self._loaded_stamp = now, stamp
        EVALUATORS.set(len(fresh))
        return True

    def _build(self, config: EvaluatorConfig) -> ActiveEvaluator:
        rubrics = [resolve_rubric(ref, config.custom_rubrics) for ref in config.rubrics]
        key = _slot_key(config)
        slot = self._slots.get(key)
        if slot is None:
            try:
                api_key = self.credentials.api_key(name=config.judge.credential, tenant_id=config.tenant_id,
                                                   base_url=config.judge.base_url)
            except CredentialUnavailable as exc:
                # The tenant's rows say "credential unavailable"; why is for the operator's eyes only.
                log.error("an evaluator's judge credential is unavailable; its judgments will be errors",
                          extra={"tenant_id": config.tenant_id, "evaluator_id": config.id,
                                 "credential": config.judge.credential, "reason": exc.reason})
                return ActiveEvaluator(config, rubrics, None, CREDENTIAL_UNAVAILABLE, None)
            client = JudgeClient.from_spec(config.judge, api_key=api_key, egress=self.egress,
                                           max_concurrency=config.max_concurrency,
                                           policy=self.settings.retry_policy(), capabilities=self.capabilities)
            in_progress = config.max_concurrency * max(1, self.settings.judgments_per_slot)
            slot = JudgeSlot(client, asyncio.Semaphore(in_progress))
            self._slots[key] = slot
        scorer = Scorer(config=config, judge=slot.client, cache=self.cache, ledger=self.ledger,
                        usage_id_key=self.settings.usage_id_secret())
        log.info("evaluator loaded", extra={"evaluator_id": config.id, "tenant_id": config.tenant_id,
                                            "rubrics": list(config.rubrics), "sample_rate": config.sample_rate})
        return ActiveEvaluator(config, rubrics, scorer, None, slot)

    def acquire(self, actives: Iterable[ActiveEvaluator]) -> list[JudgeSlot]:
        """Mark the judge slots of `actives` in use by a batch (a refresh does not close them meanwhile)."""
        slots = list({id(a.slot): a.slot for a in actives if a.slot is not None}.values())
        for slot in slots:
            slot.users += 1
        return slots

    async def release(self, slots: Iterable[JudgeSlot]) -> None:
        for slot in slots:
            slot.users -= 1
            if slot.retired and slot.users == 0:
                await slot.client.close()

    async def close(self) -> None:
        for slot in self._slots.values():
            await slot.client.close()
        self._slots, self._by_id, self._by_tenant = {}, {}, {}


def _slot_key(config: EvaluatorConfig) -> SlotKey:
    return config.tenant_id, config.id, config.judge.model_dump_json(), config.max_concurrency
