"""The whole suite under faults, checked against ground truth (issue 10, item 10).

    .venv/bin/python bench/chaos.py                      # the long form: >= 10 minutes, every fault twice
    .venv/bin/python bench/chaos.py --short              # the short form (CI: tests/chaos/test_chaos.py)
    .venv/bin/python bench/chaos.py --duration 900 --seed 7 --json report.json

**What runs.** A Kafka broker, a Postgres server and a Redis server of the harness's own (the local-stack
code of `llmops_devtools.stack`, on free ports, in a folder of their own whose logs are copied into the
run's folder at the end: the shared servers on 9092, 5432 and 6379 are never touched, nor signalled), and
every service as its own process, as in
production: the ingest API, the guardrails worker, notifier and API, the billing worker and API, the
evaluator worker and API, and the fake LLM (`llmops_devtools.fake_openai`) as the evaluator's judge. Each
is configured with environment variables only (`llmops_shared.settings.environment`). A supervisor
restarts a process that exits without being told to (as systemd or Kubernetes would), and records the
exit: an unplanned exit is a failed check, with the process's last log lines as evidence. Settings that
differ from the defaults, for shorter runs (none weakens a check): workers batch for at most 100 ms, use the
broker's shortest session time-out (6 s, so a killed worker's partitions move on sooner) and retry
Postgres every 2 s at most; the notifier's attempts time out after 2 s and back off 0.2 s to 1 s (its six
attempts span about 3 s, less than the webhook outage); the billing outbox relay runs every second.

**Set-up, through the APIs.** Three tenants with an ingest key and an admin key each; per tenant two webhook
channels pointing at the harness's own HTTP receiver (every severity; one without repeat throttling, one
throttled as channels are by default, which the notifier decides with Redis), and a monthly budget small
enough that every threshold is crossed; for the first tenant an evaluator judging half of its
`support-bot` traffic (deterministic sample) on two rubrics, with the fake LLM as its judge.

**Load with known ground truth.** A steady stream of events through `POST /v1/interactions` (retried
until accepted, as the SDK does): priced models with known token counts (cache, reasoning), an unpriced
model, error events with and without usage, tool spans (never billed), and PII/secret canaries that are
unique strings of this run: an e-mail address (prompt and completion), a card number, a GitHub token.
Everything the pipeline must produce is computed here, from the events alone: ledger rows and their cost
(plain `Decimal` arithmetic on the built-in price file's numbers), the rollups, the findings (with their
offsets and salted hashes), the alerts and their counts, the budget crossings, the sampled judgments.

**Faults, in turn, during the load.** SIGKILL (and restart) of each worker and of the notifier; kill -9 of
the broker and restart; Postgres stopped in immediate mode while an alert is being delivered (the webhook
holds its answer to one alert message until Postgres is down, then answers 200); Redis killed; the webhook
endpoint answering 503 for longer than the notifier's retry budget. Each fault's downtime (until the
component is back) and recovery time (from then until every consumer group and the ingest API make progress
again) is measured.

**Checks, once every consumer group's lag is zero.** Per check: expected, found, missing, duplicated and
wrong (a value that differs, a failed status, a leak):
  - every event accepted by the ingest API;
  - the ledger: one row per billable event, priced to the last decimal place; the judge's usage events
    billed once each; the hourly, daily, per-user and per-tag rollups equal the sums of the ground truth;
  - every planted finding stored exactly once (NER findings the detectors add on top are reported, not
    counted: they are not ground truth);
  - every event counted once into its alert; one alert per fingerprint; budget and unpriced-model alerts
    decided once;
  - every alert message on the alerts topic delivered to the unthrottled channel at least once (counted once
    by its `message_id`), the latest state of every alert among them, and no delivery recorded `failed`;
    every alert delivered at least once to the throttled channel;
  - every sampled event has exactly one judgment per rubric, all `ok`;
  - no dead letters; no unplanned process exit;
  - no canary in Postgres (every column of every table), in any process log (the services', Kafka's,
    Postgres', Redis'), on the clean topic, in a notification, or in Redis' files.

Prints the fault table and the check table (Markdown), writes everything to a JSON report, exits 1 if any
check fails (2 if the harness itself could not run). The run folder (logs, report) is kept; the servers'
folder is deleted unless `--keep`. `--tamper` tests the harness itself: it corrupts one result per check
before checking, and each check must then fail by exactly that much.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import hashlib
import hmac
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic_settings import BaseSettings

from llmops_billing.settings import BillingSettings
from llmops_devtools.stack import local
from llmops_devtools.stack.kafka import KafkaBroker
from llmops_devtools.stack.processes import StackError, pid_alive, port_open, read_pid, repo_root
from llmops_devtools.testing import free_port, litellm_price_table
from llmops_devtools.webhooks import PostServer
from llmops_evaluator.settings import EvaluatorSettings
from llmops_guardrails.notifier.service import NotifierSettings
from llmops_guardrails.settings import GuardrailsSettings
from llmops_ingest.settings import IngestSettings
from llmops_shared import apikeys
from llmops_shared.alerts import AlertMessage
from llmops_shared.privacy import DEV_PSEUDONYM_KEY, pseudonym
from llmops_shared.settings import CommonSettings, environment
from llmops_shared.topics import ALERTS, INTERACTIONS_CLEAN, INTERACTIONS_RAW, TOPICS

STARTED = time.monotonic()
SHARED_PORTS = {9092, 9093, 5432, 6379}  # the shared stack's: never ours


def say(message: str) -> None:
    print(f"[chaos {time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# ==================================================================================================
# The plan: how long, how much, which faults.


@dataclass(frozen=True)
class Plan:
    duration_s: float  # the load runs at least this long (longer if the faults need it)
    seed: int
    rate: float  # events per second
    rounds: int  # every fault this many times
    pg_down_s: float
    redis_down_s: float
    webhook_down_s: float
    drain_timeout_s: float
    delivery_grace_s: float  # after the lag is zero, how long deliveries still being retried may take
    webhook_latency_ms: float  # the endpoint's answer time (a real one is not instant: the notifier is busy)
    recovery_timeout_s: float
    log_level: str
    short: bool
    tamper: bool = False  # corrupt a few results before the checks: proves each check can fail

    @property
    def faults(self) -> list[str]:
        one = ["kill guardrails-worker", "kill billing-worker", "kill evaluator-worker", "kill guardrails-notifier",
               "kill -9 kafka", "stop postgres (immediate)", "kill -9 redis", "webhook endpoint down (503)"]
        return [f for _ in range(self.rounds) for f in one]


LONG = {"duration": 660.0, "rate": 10.0, "rounds": 2, "pg_down_s": 20.0, "redis_down_s": 10.0,
        "webhook_down_s": 15.0, "drain_timeout_s": 300.0, "delivery_grace_s": 60.0, "recovery_timeout_s": 120.0}
SHORT = {"duration": 40.0, "rate": 6.0, "rounds": 1, "pg_down_s": 5.0, "redis_down_s": 3.0,
         "webhook_down_s": 6.0, "drain_timeout_s": 120.0, "delivery_grace_s": 15.0, "recovery_timeout_s": 60.0}


# ==================================================================================================
# Ground truth: the events, and what the pipeline must make of them.

TENANTS = ("chaos-acme", "chaos-globex", "chaos-initech")
APPS = ("support-bot", "sales-assistant", "code-helper")
JUDGED_TENANT, JUDGED_APP = TENANTS[0], "support-bot"
EVALUATOR_ID = "chaos-support-quality"
RUBRICS = (("relevance", 1), ("safety", 1))
SAMPLE_RATE = 0.5
JUDGE_MODEL, JUDGE_PROVIDER = "gpt-4o-mini", "openai"
JUDGE_APP = "llmops-evaluator"  # the app id of the judge's own usage events (llmops_evaluator.usage_events)
JUDGE_TAG = "llmops:judge"
JUDGE_KEY_ENV = "LLMOPS_CHAOS_JUDGE_KEY"
JUDGE_CREDENTIAL = "chaos-judge"  # the operator's credential, granted to the judged tenant for the fake LLM only
PRICED_MODELS = (("gpt-4o-mini", "openai"), ("gpt-4o", "openai"), ("o3-mini", "openai"),
                 ("claude-sonnet-4-20250514", "anthropic"), ("deepseek-chat", "deepseek"))
UNPRICED_MODEL = ("chaos-house-model", "acme-labs")
BUDGET_AMOUNT = Decimal("0.05")  # monthly, per tenant: every threshold is crossed early in the run
BUDGET_THRESHOLDS = (50, 80, 100)
SYSTEM_PROMPT = "You are the support assistant of a parcel service. Answer briefly."
# Lower-case prose without names or places: the detectors find nothing in it (checked once by hand against
# the default policy), so the planted values are the only findings the ground truth expects.
BENIGN = (
    ("where is parcel {n}? it was due on the {d}th.", "parcel {n} leaves the depot today."),
    ("please summarise the refund policy for order {n} in two sentences.",
     "refunds for order {n} are possible within 30 days."),
    ("which plan includes single sign-on and audit logs for team {n}?", "the team plan includes both."),
    ("how do i rotate the api token for build {n}?", "open settings, then tokens, then rotate for build {n}."),
    ("can you write a python function that sorts {n} numbers?", "use sorted() on the list of {n} numbers."),
)
KINDS = (("plain", 0.52), ("email", 0.10), ("card", 0.08), ("secret", 0.07), ("unpriced", 0.05),
         ("error_usage", 0.07), ("error_no_usage", 0.05), ("tool", 0.06))
ALERT_RULE = {"email": ("pii-in-completion", "pii"), "card": ("payment-data-alert", "pii"),
              "secret": ("secret-alert", "secrets")}


@dataclass(frozen=True)
class Planted:
    """A value the detectors must find, where they must find it."""

    value: str
    side: str  # input | output
    message_index: int | None
    detector: str
    kind: str
    start: int
    end: int


@dataclass
class Planned:
    event: dict[str, Any]
    tenant: str
    kind: str
    planted: list[Planted]
    billable: bool
    unpriced: bool
    judged: bool
    alert: tuple[str, str] | None  # (rule, detector)
    accepted: bool = False

    @property
    def event_id(self) -> str:
        return str(self.event["event_id"])


def sampled(event_id: str, rate: float) -> bool:
    """The evaluator's documented sample (`llmops_evaluator.config.sampled`): a hash of the event id."""
    if rate >= 1:
        return True
    digest = hashlib.sha256(b"llmops-sample:" + uuid.UUID(event_id).bytes).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


class Traffic:
    """Deterministic for a seed: each call to `next` gives the next events, and records their ground truth."""

    def __init__(self, seed: int, run_id: str) -> None:
        self.rng = random.Random(seed)
        self.run_id = run_id
        self.seq = 0
        self.planned: list[Planned] = []

    def _card(self) -> str:
        digits = [4] + [self.rng.randint(0, 9) for _ in range(14)]
        total = 0
        for i, digit in enumerate(reversed(digits)):
            doubled = digit * 2 if i % 2 == 0 else digit
            total += doubled - 9 if doubled > 9 else doubled
        return "".join(map(str, [*digits, (10 - total % 10) % 10]))

    def _token(self) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "ghp_" + "".join(self.rng.choice(alphabet) for _ in range(36))

    def _kind(self) -> str:
        roll, acc = self.rng.random(), 0.0
        for kind, weight in KINDS:
            acc += weight
            if roll < acc:
                return kind
        return "plain"

    def next(self, n: int, at: datetime) -> list[Planned]:
        return [self._one(at) for _ in range(n)]

    def _one(self, at: datetime) -> Planned:
        rng = self.rng
        self.seq += 1
        seq = self.seq
        tenant = TENANTS[seq % len(TENANTS)]
        app = rng.choice(APPS)
        kind = self._kind()
        order = 10_000 + seq  # unique per event: no two judged events read alike (no judgment-cache hits)
        user_t, reply_t = rng.choice(BENIGN)
        user, output = user_t.format(n=order, d=rng.randint(1, 28)), reply_t.format(n=order)
        planted: list[Planted] = []
        if kind == "email":
            email = f"chaos.{self.run_id}.e{seq:06d}@example.com"
            user = f"please send the invoice for order {order} to {email} today."
            output = f"the invoice will go to {email} shortly."
            planted = [Planted(email, "input", 1, "pii", "EMAIL_ADDRESS", user.index(email),
                               user.index(email) + len(email)),
                       Planted(email, "output", None, "pii", "EMAIL_ADDRESS", output.index(email),
                               output.index(email) + len(email))]
        elif kind == "card":
            card = self._card()
            user = f"charge my card {card} for order {order}."
            output = "done, the order is paid."
            planted = [Planted(card, "input", 1, "pii", "CREDIT_CARD", user.index(card), user.index(card) + len(card))]
        elif kind == "secret":
            token = self._token()
            user = f"is the token `{token}` still valid for order {order}?"
            output = "rotate that token and try again."
            planted = [Planted(token, "input", 1, "secrets", "github_token", user.index(token),
                               user.index(token) + len(token))]
        model, provider = UNPRICED_MODEL if kind == "unpriced" else rng.choice(PRICED_MODELS)
        input_tokens = rng.randint(20, 60_000)
        cache_read = rng.randint(0, input_tokens // 2) if rng.random() < 0.3 else 0
        cache_write = rng.randint(0, (input_tokens - cache_read) // 3) if model.startswith("claude") else 0
        output_tokens = rng.randint(1, 4_000)
        reasoning = rng.randint(0, output_tokens) if model == "o3-mini" else 0
        tags = sorted(rng.sample(["chaos", "team-a", "team-b"], rng.randint(0, 2)))
        event: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "occurred_at": at.isoformat(),
            "app_id": app,
            "environment": "chaos",
            "trace_id": f"tr-{self.run_id}-{seq}",
            "span_id": f"sp-{seq}",
            "span_kind": "llm",
            "provider": provider,
            "model": model,
            "input": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
            "output": output,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "cache_read_input_tokens": cache_read, "cache_write_input_tokens": cache_write,
                      "reasoning_tokens": reasoning},
            "latency_ms": float(rng.randint(80, 4000)),
            "status": "ok",
            "prompt": {"name": "assist", "version": str(rng.randint(1, 2))},
            "tags": tags,
            "metadata": {"source": "chaos"},
        }
        if rng.random() < 0.8:
            event["user_id"] = f"user-{rng.randint(1, 12)}"
        billable = True
        if kind == "error_usage":
            event.update(status="error", error={"type": "rate_limit_error", "message": "provider said 429"},
                         output=None)
        elif kind == "error_no_usage":
            event.update(status="error", error={"type": "server_error", "message": "provider said 500"},
                         output=None, usage=None)
            billable = False  # a failed call without usage is not billed (llmops_billing.ledger)
        elif kind == "tool":
            event.update(span_kind="tool", name="lookup-order", model=None, provider=None)
            billable = False  # only llm and embedding spans are billed
        judged = (tenant == JUDGED_TENANT and app == JUDGED_APP and event["span_kind"] == "llm"
                  and event["status"] == "ok" and bool(event["output"]) and sampled(event["event_id"], SAMPLE_RATE))
        planned = Planned(event, tenant, kind, planted, billable, kind == "unpriced", judged, ALERT_RULE.get(kind))
        self.planned.append(planned)
        return planned


def expected_cost(prices: dict[str, Decimal], usage: dict[str, int]) -> Decimal:
    cache_read, cache_write = usage.get("cache_read_input_tokens", 0), usage.get("cache_write_input_tokens", 0)
    reasoning = usage.get("reasoning_tokens", 0)
    return ((usage["input_tokens"] - cache_read - cache_write) * prices["input"]
            + cache_read * prices["cache_read"] + cache_write * prices["cache_write"]
            + (usage["output_tokens"] - reasoning) * prices["output"] + reasoning * prices["reasoning"]
            + prices["request"])


@dataclass(frozen=True)
class LedgerTruth:
    event_id: str
    tenant: str
    app: str
    user: str
    tags: tuple[str, ...]
    occurred_at: datetime
    tokens: tuple[int, int, int, int, int]  # input, output, cache read, cache write, reasoning
    cost: Decimal | None  # None: unpriced


def ledger_truth(p: Planned, prices: dict[str, dict[str, Decimal]]) -> LedgerTruth:
    e = p.event
    usage = e["usage"]
    tokens = (usage["input_tokens"], usage["output_tokens"], usage["cache_read_input_tokens"],
              usage["cache_write_input_tokens"], usage["reasoning_tokens"])
    cost = None if p.unpriced else expected_cost(prices[e["model"]], usage)
    # users are stored as pseudonyms; the run's processes use the development key (no LLMOPS_* inherited)
    user = pseudonym(p.tenant, e["user_id"], DEV_PSEUDONYM_KEY) if e.get("user_id") else ""
    return LedgerTruth(p.event_id, p.tenant, e["app_id"], user, tuple(e["tags"]),
                       datetime.fromisoformat(e["occurred_at"]), tokens, cost)


# ==================================================================================================
# The servers (Kafka, Postgres, Redis) of this run, and the suite's processes.


def pick_ports() -> dict[str, int]:
    chosen: set[int] = set()

    def fresh(pair: bool = False) -> int:
        while True:
            port = free_port()
            if port in chosen or port in SHARED_PORTS or (pair and (port + 1 in chosen or port_open(port + 1)
                                                                    or port + 1 in SHARED_PORTS)):
                continue
            chosen.update({port, port + 1} if pair else {port})
            return port

    return {"kafka": fresh(pair=True), "postgres": fresh(), "redis": fresh(), "ingest": fresh(),
            "guardrails_api": fresh(), "billing_api": fresh(), "evaluator_api": fresh(), "fake_llm": fresh()}


def kafka_lib_cache() -> Path:
    """Kafka's jars, fetched by Maven once per pinned version and shared by every run (symlinked in)."""
    pom = repo_root() / "deploy" / "local" / "kafka" / "pom.xml"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llmops" / f"kafka-{digest}"
    KafkaBroker(home).install()
    return home / "lib"


class Servers:
    """Kafka, Postgres and Redis of this run only: started under `home`, on the run's ports."""

    def __init__(self, home: Path, common: CommonSettings) -> None:
        self.home = home
        self.common = common
        self.stack = local.LocalStack.from_settings(common, home)
        for port in (self.stack.kafka.port, self.stack.postgres.port, self.stack.redis.port):
            if port in SHARED_PORTS:
                raise SystemExit(f"refusing to run on the shared stack's port {port}")

    def up(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "kafka").mkdir(exist_ok=True)
        lib = self.home / "kafka" / "lib"
        if not lib.exists():
            lib.symlink_to(kafka_lib_cache(), target_is_directory=True)
        local.infrastructure_up(self.common, say=lambda m: say(f"stack: {m}"), home=self.home)

    # -- faults ------------------------------------------------------------------------------------
    def kill_kafka(self) -> None:
        _kill_pid_file(self.stack.kafka.pid_file, ports=(self.stack.kafka.port, self.stack.kafka.controller_port))

    def start_kafka(self) -> None:
        for attempt in range(3):
            try:
                self.stack.kafka.start(timeout_s=90)
                return
            except StackError:
                if attempt == 2:
                    raise
                time.sleep(2)

    def stop_postgres_immediately(self) -> None:
        self.stack.postgres.stop(mode="immediate")

    def start_postgres(self) -> None:
        self.stack.postgres.start()

    def kill_redis(self) -> None:
        _kill_pid_file(self.stack.redis.pid_file, ports=(self.stack.redis.port,))

    def start_redis(self) -> None:
        self.stack.redis.start()

    def logs(self) -> list[Path]:
        return [self.stack.kafka.log_file, self.stack.postgres.log_file, self.stack.redis.log_file]

    def redis_files(self) -> list[Path]:
        """What Redis keeps on disk (its append-only files): the judgment cache and the rest."""
        return sorted(p for p in self.stack.redis.home.rglob("*") if p.is_file() and p.suffix != ".log"
                      and p.name != "redis.pid")

    def down(self) -> None:
        for name, stop in (("kafka", self.stack.kafka.stop), ("redis", self.stack.redis.stop),
                           ("postgres", self.stack.postgres.stop)):
            try:
                stop()
            except Exception as exc:  # the others must still be stopped
                say(f"stack: stopping {name} failed: {exc!r}")


def _kill_pid_file(pid_file: Path, *, ports: Sequence[int]) -> None:
    """SIGKILL the process of `pid_file`; return once its ports are closed. (A multi-threaded process shows
    as a zombie while its other threads still hold its sockets: the pid alone says "gone" too early.)"""
    pid = read_pid(pid_file)
    if pid is None:
        raise RuntimeError(f"nothing running per {pid_file}")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (pid_alive(pid) or any(port_open(p) for p in ports)) and time.monotonic() < deadline:
        time.sleep(0.05)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    env: dict[str, str]
    port: int | None = None  # an API: ready when GET /healthz answers 200
    ready_log: str | None = None  # a worker: ready when its log says this


@dataclass
class Exit:
    service: str
    at_s: float
    returncode: int | None
    log_tail: list[str]


def crash_summary(log: str) -> list[str]:
    """What a process said as it died: its last warnings before the traceback (or its last lines), the
    traceback's frames in the suite's own code, and the exception."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if not starts:
        return [line[:300] for line in lines[-12:]]
    first = starts[-1]
    while first > 0 and lines[first - 1].startswith(("Traceback", " ", "During handling", "The above exception")):
        first -= 1  # back to the start of a chain of exceptions
    recent = lines[max(0, first - 50):first]
    notable = [line for line in recent if '"level":"warning"' in line or '"level":"error"' in line]
    before = [line[:300] for line in (notable or recent)[-3:]]
    repo = str(repo_root())
    frames = []
    block = lines[first:]
    for i, line in enumerate(block):
        text = line.strip()
        if text.startswith('File "') and repo in text and "/.venv/" not in text:
            code = block[i + 1].strip() if i + 1 < len(block) else ""
            frames.append(f"{text.replace(repo + '/', '')}: {code}")
    exception = [line for line in block if line and not line.startswith((" ", "Traceback", "{"))]
    return [*before, *frames[-10:], *exception[-3:]]


class Supervisor:
    """Runs each service as its own process; restarts one that exits unbidden (and records that exit)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.specs: dict[str, ServiceSpec] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.offsets: dict[str, int] = {}  # where the current process's log starts
        self.planned: set[str] = set()  # being stopped on purpose
        self.exits: list[Exit] = []
        self.starts: collections.Counter[str] = collections.Counter()

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def spawn(self, spec: ServiceSpec) -> None:
        self.specs[spec.name] = spec
        path = self.log_path(spec.name)
        self.starts[spec.name] += 1
        with open(path, "ab") as out:
            self.offsets[spec.name] = out.tell()
            self.procs[spec.name] = subprocess.Popen(
                [sys.executable, "-m", spec.module], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=spec.env, cwd=repo_root(), start_new_session=True)

    async def ready(self, name: str, timeout_s: float = 120) -> None:
        spec = self.specs[name]
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                if spec.port is not None:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"http://127.0.0.1:{spec.port}/healthz")).status_code == 200:
                            return
                elif spec.ready_log is not None and spec.ready_log in self._log_since_start(name):
                    return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{name} not ready within {timeout_s} s:\n" + "\n".join(self.tail(name)))

    def _log_since_start(self, name: str) -> str:
        with open(self.log_path(name), "rb") as log:
            log.seek(self.offsets[name])
            return log.read().decode(errors="replace")

    def tail(self, name: str, lines: int = 15) -> list[str]:
        return self._log_since_start(name).splitlines()[-lines:]

    async def kill(self, name: str) -> None:
        """SIGKILL, on purpose (not recorded as an exit); the caller restarts it."""
        self.planned.add(name)
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 20)

    async def restart(self, name: str) -> None:
        self.spawn(self.specs[name])
        self.planned.discard(name)
        await self.ready(name)

    async def watch(self) -> None:
        """Restart what exits unbidden (backoff 1 s doubling to 8 s, as a process manager would)."""
        delay: dict[str, float] = collections.defaultdict(lambda: 1.0)
        while True:
            await asyncio.sleep(0.5)
            for name, proc in list(self.procs.items()):
                if name in self.planned or proc.poll() is None:
                    continue
                self.exits.append(Exit(name, round(time.monotonic() - STARTED, 1), proc.returncode,
                                       crash_summary(self._log_since_start(name))))
                say(f"UNPLANNED EXIT: {name} exited with {proc.returncode}; restarting in {delay[name]:.0f} s")
                self.planned.add(name)
                await asyncio.sleep(delay[name])
                delay[name] = min(8.0, delay[name] * 2)
                self.spawn(self.specs[name])
                self.planned.discard(name)

    def stop_all(self, timeout_s: float = 20) -> None:
        self.planned.update(self.procs)
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop on SIGTERM; SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


# ==================================================================================================
# The webhook receiver: counts alerts by message id; can be made to answer 503 (an endpoint outage).
# Two channels per tenant point at it: one takes every alert message (no repeat throttling), the other is
# throttled as channels are by default (a repeat of an open alert within the hour is suppressed, which
# the notifier decides with Redis), so that the Redis outage reaches the notifier too.

EVERY_PATH, THROTTLED_PATH = "/hook/every", "/hook/throttled"


class Receiver(PostServer):
    def __init__(self, latency_ms: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.latency_s = latency_ms / 1000
        self.down = False
        self.attempts = 0
        self.refused = 0
        self.deliveries: collections.Counter[str] = collections.Counter()  # every-channel: message_id -> 2xx
        self.throttled: collections.Counter[str] = collections.Counter()  # throttled channel: message_id -> 2xx
        self.alerts: dict[str, AlertMessage] = {}  # message_id -> the alert
        self.bodies: list[bytes] = []
        self.last_ok = 0.0
        self.holding: str | None = None  # an alert id whose deliveries wait for `release` (see `hold`)
        self.arrived = threading.Event()
        self.release = threading.Event()
        super().__init__(self._answer)

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        time.sleep(self.latency_s)
        try:
            alert: AlertMessage | None = AlertMessage.model_validate(orjson.loads(body)["alert"])
        except (ValueError, KeyError, TypeError):
            alert = None
        if alert is not None and alert.alert_id == self.holding and not self.release.is_set():
            self.arrived.set()
            self.release.wait(10)
        with self.lock:
            self.attempts += 1
            status = 503 if self.down else 200
            if status == 200:
                if alert is None:
                    status = 400
                else:
                    counter = self.throttled if path == THROTTLED_PATH else self.deliveries
                    counter[alert.message_id] += 1
                    self.alerts[alert.message_id] = alert
                    self.bodies.append(body)
                    self.last_ok = time.monotonic()
            if status != 200:
                self.refused += 1
        return status

    def hold(self, alert_id: str) -> None:
        """Hold the answer to the next deliveries of `alert_id` (`arrived` is set) until `release` is set."""
        self.arrived.clear()
        self.release.clear()
        self.holding = alert_id


# ==================================================================================================
# The load: steady batches through the ingest API, each retried until accepted.


@dataclass
class LoadStats:
    requests: int = 0
    accepted: int = 0
    retries: int = 0
    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    rejected: list[str] = field(default_factory=list)  # harness bugs: the API refused a generated event
    refusals: list[tuple[float, str]] = field(default_factory=list)  # (seconds into the run, answer) not 2xx
    last_accept: float = 0.0


class Load:
    TICK_S = 0.5

    def __init__(self, traffic: Traffic, ingest_url: str, keys: dict[str, str], rate: float) -> None:
        self.traffic = traffic
        self.url = f"{ingest_url}/v1/interactions"
        self.keys = keys
        self.rate = rate
        self.queue: collections.deque[list[Planned]] = collections.deque()
        self.stats = LoadStats()
        self.generating = True
        self._carry = 0.0
        self.wake = asyncio.Event()

    async def generate(self) -> None:
        while self.generating:
            self._carry += self.rate * self.TICK_S
            n, self._carry = int(self._carry), self._carry - int(self._carry)
            if n:
                events = self.traffic.next(n, datetime.now(UTC))
                for tenant in TENANTS:
                    mine = [p for p in events if p.tenant == tenant]
                    if mine:
                        self.queue.append(mine)
                self.wake.set()
            await asyncio.sleep(self.TICK_S)

    async def send(self, deadline: Callable[[], bool]) -> None:
        """Send queued batches in order until generation stopped and the queue is empty (or `deadline()`)."""
        async with httpx.AsyncClient(timeout=10) as client:
            while (self.generating or self.queue) and not deadline():
                if not self.queue:
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), 1)
                    continue
                batch = self.queue[0]
                if await self._post(client, batch):
                    self.queue.popleft()
                else:
                    self.stats.retries += 1
                    await asyncio.sleep(0.5)

    async def _post(self, client: httpx.AsyncClient, batch: list[Planned]) -> bool:
        self.stats.requests += 1
        try:
            resp = await client.post(self.url, json={"interactions": [p.event for p in batch]},
                                     headers={"Authorization": f"Bearer {self.keys[batch[0].tenant]}"})
        except httpx.HTTPError as exc:
            self.stats.by_status[type(exc).__name__] += 1
            self.stats.refusals.append((time.monotonic() - STARTED, type(exc).__name__))
            return False
        self.stats.by_status[str(resp.status_code)] += 1
        if resp.status_code >= 300:
            self.stats.refusals.append((time.monotonic() - STARTED, str(resp.status_code)))
        if resp.status_code in (202, 207):
            rejected = {e["index"] for e in (resp.json().get("errors") or [])}
            for i, p in enumerate(batch):
                if i in rejected:
                    self.stats.rejected.append(p.event_id)
                else:
                    p.accepted = True
            self.stats.accepted += len(batch) - len(rejected)
            self.stats.last_accept = time.monotonic()
            return True
        if resp.status_code == 422:
            self.stats.rejected.extend(p.event_id for p in batch)
            return True
        return False  # 401 (key look-up failed), 429, 503, 500: retried, as the SDK does


# ==================================================================================================
# Kafka: consumer groups' progress and lag.

GROUPS = {"llmops-guardrails": INTERACTIONS_RAW, "llmops-billing": INTERACTIONS_RAW,
          "llmops-evaluator": INTERACTIONS_CLEAN, "llmops-notifier": ALERTS}
PARTITIONS = {t.name: t.partitions for t in TOPICS}


@dataclass(frozen=True)
class GroupState:
    committed: int
    lag: int


class KafkaWatch:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin: AIOKafkaAdminClient | None = None
        self.consumer: AIOKafkaConsumer | None = None

    async def _open(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self.admin is None or self.consumer is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                        request_timeout_ms=5000)
            try:
                await admin.start()
                await consumer.start()
            except Exception:
                with contextlib.suppress(Exception):
                    await admin.close()
                with contextlib.suppress(Exception):
                    await consumer.stop()
                raise
            self.admin, self.consumer = admin, consumer
        return self.admin, self.consumer

    async def close(self) -> None:
        admin, consumer, self.admin, self.consumer = self.admin, self.consumer, None, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def groups(self) -> dict[str, GroupState] | None:
        """Each group's committed offsets (summed) and lag; None while Kafka does not answer."""
        try:
            async with asyncio.timeout(10):
                admin, consumer = await self._open()
                tps = [TopicPartition(t, p) for t in set(GROUPS.values()) for p in range(PARTITIONS[t])]
                ends = await consumer.end_offsets(tps)
                out = {}
                for group, topic in GROUPS.items():
                    offsets = await admin.list_consumer_group_offsets(group)
                    committed = lag = 0
                    for p in range(PARTITIONS[topic]):
                        tp = TopicPartition(topic, p)
                        done = offsets[tp].offset if tp in offsets and offsets[tp].offset >= 0 else 0
                        committed += done
                        lag += max(0, ends[tp] - done)
                    out[group] = GroupState(committed, lag)
                return out
        except Exception:
            await self.close()
            return None

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    async def read_all(self, topic: str) -> list[bytes]:
        """Every record of `topic`, from the start to its end now."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS[topic])]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, 0)
            values: list[bytes] = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                positions = [await consumer.position(tp) for tp in tps]
                if all(at >= ends[tp] for at, tp in zip(positions, tps, strict=True)):
                    break
                got = await consumer.getmany(timeout_ms=500, max_records=5000)
                for records in got.values():
                    values.extend(r.value or b"" for r in records)
            return values
        finally:
            await consumer.stop()


# ==================================================================================================
# Faults.


@dataclass
class FaultResult:
    fault: str
    round: int
    at_s: float
    downtime_s: float
    recovery_s: float | None  # None: did not recover within the time limit
    note: str = ""


def probe_alert(n: int) -> AlertMessage:
    """An alert message as any service may publish one (the contract of `llmops.alerts`)."""
    return AlertMessage(alert_id=str(uuid.uuid4()), source="chaos", tenant_id=JUDGED_TENANT, app_id=JUDGED_APP,
                        rule="chaos.probe", detector="chaos", severity="warning",
                        fingerprint=f"chaos/{JUDGED_TENANT}/probe/{n}",
                        title="chaos probe: an alert in flight while Postgres is down",
                        summary="published by the chaos harness while Postgres was stopped",
                        occurred_at=datetime.now(UTC))


class Chaos:
    def __init__(self, plan: Plan, *, servers: Servers, supervisor: Supervisor, receiver: Receiver, load: Load,
                 kafka: KafkaWatch) -> None:
        self.plan = plan
        self.servers = servers
        self.supervisor = supervisor
        self.receiver = receiver
        self.load = load
        self.kafka = kafka
        self.results: list[FaultResult] = []

    async def inject(self, fault: str, round_no: int) -> FaultResult:
        say(f"fault: {fault} (round {round_no})")
        exits_before = len(self.supervisor.exits)
        problems: list[str] = []
        t0 = time.monotonic()
        if fault.startswith("kill -9 kafka"):
            await asyncio.to_thread(self.servers.kill_kafka)
            await asyncio.to_thread(self.servers.start_kafka)
        elif fault.startswith("stop postgres"):
            # Postgres stops while an alert is being delivered, whatever the timing of the guardrails'
            # batches: an alert message (as any service may publish one) whose delivery the webhook holds
            # until Postgres is down, then answers 200; the notifier must still record it and go on.
            probe = probe_alert(round_no)
            self.receiver.hold(probe.alert_id)
            await self.kafka.publish(ALERTS, probe.fingerprint.encode(), probe.to_json())
            if not await asyncio.to_thread(self.receiver.arrived.wait, 30):
                problems.append("the probe alert was not in delivery when Postgres stopped")
            t0 = time.monotonic()
            await asyncio.to_thread(self.servers.stop_postgres_immediately)
            self.receiver.release.set()
            await asyncio.sleep(self.plan.pg_down_s)
            await asyncio.to_thread(self.servers.start_postgres)
        elif fault.startswith("kill -9 redis"):
            await asyncio.to_thread(self.servers.kill_redis)
            await asyncio.sleep(self.plan.redis_down_s)
            await asyncio.to_thread(self.servers.start_redis)
        elif fault.startswith("webhook"):
            self.receiver.down = True
            await asyncio.sleep(self.plan.webhook_down_s)
            self.receiver.down = False
        else:
            name = fault.removeprefix("kill ")
            await self.supervisor.kill(name)
            try:
                await self.supervisor.restart(name)
            except RuntimeError as exc:  # not ready in time: a finding, not the end of the run
                problems.append(str(exc).splitlines()[0])
        t1 = time.monotonic()
        recovery = await self.moving(since=t1, webhook=fault.startswith("webhook"))
        exits = [e.service for e in self.supervisor.exits[exits_before:]]
        if exits:
            problems.append(f"unplanned exits meanwhile: {', '.join(exits)}")
        note = "; ".join(problems)
        result = FaultResult(fault, round_no, round(t0 - STARTED, 1), round(t1 - t0, 1),
                             None if recovery is None else round(recovery - t1, 1), note)
        say(f"fault: {fault}: down {result.downtime_s} s, pipeline moving again after "
            f"{'-' if result.recovery_s is None else result.recovery_s} s {note}")
        self.results.append(result)
        return result

    async def moving(self, *, since: float, webhook: bool) -> float | None:
        """When every group has committed past where it stood at `since` (or has nothing to do), the
        ingest API has accepted a request after `since`, and (webhook) a delivery succeeded again."""
        deadline = since + self.plan.recovery_timeout_s
        start = None
        while start is None and time.monotonic() < deadline:
            start = await self.kafka.groups()
            if start is None:
                await asyncio.sleep(0.5)
        pending = set(GROUPS)
        while time.monotonic() < deadline:
            now = await self.kafka.groups()
            if now is not None and start is not None:
                pending = {g for g in pending if not (now[g].committed > start[g].committed or now[g].lag == 0)}
            ingest_ok = self.load.stats.last_accept > since or not self.load.generating
            hook_ok = not webhook or self.receiver.last_ok > since or (now is not None and
                                                                       now["llmops-notifier"].lag == 0)
            if not pending and ingest_ok and hook_ok:
                return time.monotonic()
            await asyncio.sleep(0.25)
        return None

    async def run(self) -> None:
        faults = self.plan.faults
        warmup = 8.0 if self.plan.short else 20.0
        spacing = max(0.0, (self.plan.duration_s - warmup - 5) / len(faults))
        begin = time.monotonic() + warmup
        for i, fault in enumerate(faults):
            due = begin + i * spacing
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self.inject(fault, i // (len(faults) // self.plan.rounds) + 1)


# ==================================================================================================
# Checks.


@dataclass
class Check:
    name: str
    expected: int
    found: int
    missing: int = 0
    duplicated: int = 0
    wrong: int = 0
    note: str = ""
    evidence: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.missing == 0 and self.duplicated == 0 and self.wrong == 0


class Canaries:
    """The run's unique PII and secret values, and a fast search for them in any text."""

    def __init__(self, values: Iterable[str], run_id: str) -> None:
        self.values = set(values)
        self.cards = {v for v in self.values if v.isdigit()}
        self.emails = re.compile(rf"chaos\.{run_id}\.e\d+@example\.com")
        self.tokens = re.compile(r"ghp_[A-Za-z0-9]{36}")
        self.digits = re.compile(r"\d{16,}")

    def find(self, text: str) -> set[str]:
        found = set(self.emails.findall(text))
        found |= {t for t in self.tokens.findall(text) if t in self.values}
        for run in self.digits.findall(text):
            found |= {run[i:i + 16] for i in range(len(run) - 15)} & self.cards
        return found


class Verifier:
    def __init__(self, pool: asyncpg.Pool, traffic: Traffic, *, receiver: Receiver, kafka: KafkaWatch, salt: str,
                 budgets: dict[str, int], logs: Path, channels: dict[str, list[int]]) -> None:
        self.logs = logs
        self.channels = channels
        self.pool = pool
        self.traffic = traffic
        self.accepted = [p for p in traffic.planned if p.accepted]
        self.receiver = receiver
        self.kafka = kafka
        self.salt = salt
        self.budgets = budgets
        self.prices = litellm_price_table(model for model, _provider in PRICED_MODELS)
        self.checks: list[Check] = []

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    async def run(self, load: Load, supervisor: Supervisor, lag: dict[str, GroupState] | None,
                  faults: Sequence[FaultResult]) -> None:
        self.check_ingest(load, faults)
        if lag is None:
            self.add(Check("consumer lag zero everywhere", len(GROUPS), 0, missing=len(GROUPS),
                           note="Kafka did not answer"))
        else:
            behind = {g: s.lag for g, s in lag.items() if s.lag}
            self.add(Check("consumer lag zero everywhere", len(GROUPS), len(GROUPS) - len(behind),
                           missing=sum(behind.values()), note=f"messages behind: {behind}" if behind else ""))
        judge_rows = await self.check_ledger()
        await self.check_rollups(judge_rows)
        await self.check_findings()
        await self.check_guardrails_alerts()
        await self.check_billing_alerts()
        await self.check_deliveries()
        await self.check_throttled_deliveries()
        await self.check_judgments()
        await self.check_dead_letters()
        self.check_exits(supervisor)

    # -- ingest ------------------------------------------------------------------------------------
    def check_ingest(self, load: Load, faults: Sequence[FaultResult]) -> None:
        """Every event accepted in the end (the sender retries as the SDK does); which answers that were not
        2xx came during which fault is reported (a 500 is not one of the API's documented answers)."""
        planned = self.traffic.planned
        during: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for at, answer in load.stats.refusals:
            window = next((f"{f.fault} (round {f.round})" for f in faults
                           if f.at_s <= at <= f.at_s + f.downtime_s + (f.recovery_s or 0) + 1), "no fault")
            during[window][answer] += 1
        self.add(Check("events accepted by the ingest API", len(planned), len(self.accepted),
                       missing=len(planned) - len(self.accepted) - len(load.stats.rejected),
                       wrong=len(load.stats.rejected),
                       note=f"{load.stats.requests} requests, {load.stats.retries} retried; answers "
                            f"{dict(load.stats.by_status)}; not 2xx, by fault: "
                            f"{ {k: dict(v) for k, v in during.items()} }"))

    # -- billing -----------------------------------------------------------------------------------
    async def check_ledger(self) -> list[LedgerTruth]:
        truth = {p.event_id: ledger_truth(p, self.prices) for p in self.accepted if p.billable}
        rows = await self.pool.fetch(
            """SELECT event_id::text AS id, tenant_id, app_id, coalesce(user_id, '') AS user_id, tags, occurred_at,
                      input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens,
                      reasoning_tokens, cost_total, unpriced, status FROM usage_ledger WHERE tenant_id = ANY($1)""",
            list(TENANTS))
        ours = [r for r in rows if JUDGE_TAG not in r["tags"]]
        counts = collections.Counter(r["id"] for r in ours)
        wrong = []
        for r in ours:
            t = truth.get(r["id"])
            if t is None:
                wrong.append(f"unexpected ledger row {r['id']} ({r['app_id']})")
                continue
            got = (r["input_tokens"], r["output_tokens"], r["cache_read_input_tokens"], r["cache_write_input_tokens"],
                   r["reasoning_tokens"])
            if got != t.tokens or r["cost_total"] != t.cost or r["unpriced"] != (t.cost is None):
                wrong.append(f"{r['id']}: tokens {got} cost {r['cost_total']} != {t.tokens} {t.cost}")
        missing = [i for i in truth if i not in counts]
        self.add(Check("ledger: one row per billable event, exact cost", len(truth), len(counts),
                       missing=len(missing), duplicated=sum(n - 1 for n in counts.values()), wrong=len(wrong),
                       note=f"total {sum((t.cost or Decimal(0) for t in truth.values()), Decimal(0))} USD expected",
                       evidence=[*(f"missing {i}" for i in missing[:10]), *wrong[:10]]))

        # The judge's usage: one ledger row per judgment that called the judge, with its tokens.
        results = await self.pool.fetch(
            """SELECT usage_event_id::text AS id, input_tokens, output_tokens FROM evaluation_results
               WHERE tenant_id = ANY($1) AND usage_event_id IS NOT NULL AND NOT from_cache""", list(TENANTS))
        judge_rows = [r for r in rows if JUDGE_TAG in r["tags"]]
        jcounts = collections.Counter(r["id"] for r in judge_rows)
        by_id = {r["id"]: r for r in judge_rows}
        judge_prices = self.prices[JUDGE_MODEL]
        jwrong, judge_truth = [], []
        for res in results:
            row = by_id.get(res["id"])
            if row is None:
                continue
            cost = expected_cost(judge_prices, {"input_tokens": res["input_tokens"],
                                                "output_tokens": res["output_tokens"]})
            if (row["input_tokens"], row["output_tokens"], row["cost_total"]) != (res["input_tokens"],
                                                                                   res["output_tokens"], cost):
                jwrong.append(f"judge usage {res['id']}: {row['input_tokens']}/{row['output_tokens']} "
                              f"{row['cost_total']} != {res['input_tokens']}/{res['output_tokens']} {cost}")
            judge_truth.append(LedgerTruth(res["id"], row["tenant_id"], JUDGE_APP, "", (JUDGE_TAG,),
                                           row["occurred_at"], (res["input_tokens"], res["output_tokens"], 0, 0, 0),
                                           cost))
        expected_ids = {r["id"] for r in results}
        jmissing = expected_ids - set(jcounts)
        extra = set(jcounts) - expected_ids
        self.add(Check("ledger: the judge's usage billed once per judgment", len(expected_ids),
                       len(set(jcounts) & expected_ids), missing=len(jmissing),
                       duplicated=sum(n - 1 for n in jcounts.values()), wrong=len(jwrong),
                       note=(f"{len(extra)} more judge usage row(s) of judgments made again after a failed one "
                             "(billed: the judge was called)") if extra else "",
                       evidence=[*(f"missing judge usage {i}" for i in sorted(jmissing)[:10]), *jwrong[:10]]))
        for r in judge_rows:  # judge rows without a current result still count in the rollups
            if r["id"] in extra:
                judge_truth.append(LedgerTruth(r["id"], r["tenant_id"], r["app_id"], r["user_id"], tuple(r["tags"]),
                                               r["occurred_at"], (r["input_tokens"], r["output_tokens"],
                                                                  r["cache_read_input_tokens"],
                                                                  r["cache_write_input_tokens"],
                                                                  r["reasoning_tokens"]), r["cost_total"]))
        return judge_truth

    async def check_rollups(self, judge_truth: list[LedgerTruth]) -> None:
        from llmops_billing.rollup_follower import flush

        await flush(self.pool)  # usage_daily_users follows the ledger (billing/0017): what is pending, applied
        truth = [ledger_truth(p, self.prices) for p in self.accepted if p.billable] + judge_truth
        zero = Decimal(0)

        def cell() -> list[Any]:
            return [0, 0, 0, 0, 0, 0, 0, zero]  # events, unpriced, 5 token sums, cost

        specs = [("usage_hourly", "bucket", lambda t: [t.app]),
                 ("usage_daily", "bucket", lambda t: [t.app]),
                 ("usage_daily_users", "bucket", lambda t: [t.user]),
                 ("usage_daily_tags", "bucket", lambda t: list(t.tags) or [""])]
        dims = {"usage_hourly": "app_id", "usage_daily": "app_id", "usage_daily_users": "user_id",
                "usage_daily_tags": "tag"}
        for table, bucket_sql, keys_of in specs:
            expected: dict[tuple[Any, ...], list[Any]] = collections.defaultdict(cell)
            for t in truth:
                at = t.occurred_at.astimezone(UTC)
                bucket: Any = at.replace(minute=0, second=0, microsecond=0) if table == "usage_hourly" else at.date()
                for key in keys_of(t):
                    c = expected[(t.tenant, bucket, key)]
                    c[0] += 1
                    c[1] += t.cost is None
                    for i, n in enumerate(t.tokens):
                        c[2 + i] += n
                    c[7] += t.cost or zero
            rows = await self.pool.fetch(
                f"""SELECT tenant_id, {bucket_sql} AS bucket, {dims[table]} AS key, sum(event_count) AS n,
                           sum(unpriced_count) AS u, sum(input_tokens) AS i, sum(output_tokens) AS o,
                           sum(cache_read_input_tokens) AS cr, sum(cache_write_input_tokens) AS cw,
                           sum(reasoning_tokens) AS r, sum(cost_total) AS c
                    FROM {table} WHERE tenant_id = ANY($1) GROUP BY 1, 2, 3""",  # noqa: S608 (fixed names)
                list(TENANTS))
            found = {(r["tenant_id"], r["bucket"], r["key"]): [int(r["n"]), int(r["u"]), int(r["i"]), int(r["o"]),
                                                               int(r["cr"]), int(r["cw"]), int(r["r"]), r["c"]]
                     for r in rows}
            missing = duplicated = wrong = 0
            evidence = []
            for key in set(expected) | set(found):
                exp, got = expected.get(key, cell()), found.get(key, cell())
                missing += max(0, exp[0] - got[0])
                duplicated += max(0, got[0] - exp[0])
                if exp != got:
                    if exp[0] == got[0]:
                        wrong += 1
                    evidence.append(f"{key}: expected {exp}, found {got}")
            total = sum(c[0] for c in expected.values())
            self.add(Check(f"rollup {table} (events x cells) equals the ground truth", total,
                           sum(c[0] for c in found.values()), missing=missing, duplicated=duplicated, wrong=wrong,
                           note=f"{len(expected)} cells", evidence=evidence[:10]))

    # -- guardrails --------------------------------------------------------------------------------
    async def check_findings(self) -> None:
        def vhash(value: str) -> str:
            return hmac.new(self.salt.encode(), value.encode(), hashlib.sha256).hexdigest()

        expected = {(p.event_id, f.side, f.message_index, f.detector, f.kind, f.start, f.end, vhash(f.value))
                    for p in self.accepted for f in p.planted}
        rows = await self.pool.fetch(
            """SELECT event_id::text AS id, part, message_index, detector, entity_type, start_offset, end_offset,
                      value_hash FROM guardrail_findings WHERE tenant_id = ANY($1)""", list(TENANTS))
        counts = collections.Counter(tuple(r.values()) for r in rows)
        missing = expected - set(counts)
        extras = collections.Counter(k[4] for k in counts if k not in expected)
        self.add(Check("findings: every planted value found exactly once", len(expected),
                       len(expected & set(counts)), missing=len(missing),
                       duplicated=sum(n - 1 for n in counts.values()),
                       note=(f"also stored, not ground truth (NER on the planted text): {dict(extras)}"
                             if extras else ""),
                       evidence=[f"missing {m[:5]}" for m in sorted(missing)[:10]]))

    async def check_guardrails_alerts(self) -> None:
        expected: dict[tuple[str, str, str], set[str]] = collections.defaultdict(set)
        for p in self.accepted:
            if p.alert is not None:
                expected[(p.tenant, p.event["app_id"], p.alert[0])].add(p.event_id)
        alerts = await self.pool.fetch(
            "SELECT alert_id::text AS id, tenant_id, app_id, rule_id, count FROM guardrail_alerts "
            "WHERE tenant_id = ANY($1)", list(TENANTS))
        counted = await self.pool.fetch(
            """SELECT a.tenant_id, a.app_id, a.rule_id, e.event_id::text AS event_id
               FROM guardrail_alert_events e JOIN guardrail_alerts a USING (alert_id)
               WHERE a.tenant_id = ANY($1)""", list(TENANTS))
        per_fp = collections.Counter((a["tenant_id"], a["app_id"], a["rule_id"]) for a in alerts)
        count_of: dict[tuple[str, str, str], int] = collections.defaultdict(int)
        for a in alerts:
            count_of[(a["tenant_id"], a["app_id"], a["rule_id"])] += a["count"]
        events: dict[tuple[str, str, str], collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for r in counted:
            events[(r["tenant_id"], r["app_id"], r["rule_id"])][r["event_id"]] += 1
        missing = duplicated = wrong = 0
        evidence = []
        for fp in set(expected) | set(per_fp):
            want, got = expected.get(fp, set()), events.get(fp, collections.Counter())
            missing += len(want - set(got))
            duplicated += sum(n - 1 for n in got.values()) + max(0, per_fp.get(fp, 0) - 1)
            extra = set(got) - want
            wrong += len(extra) + (count_of.get(fp, 0) != len(want))
            if want != set(got) or per_fp.get(fp, 0) != 1 or count_of.get(fp, 0) != len(want):
                evidence.append(f"{fp}: {per_fp.get(fp, 0)} alert(s), count {count_of.get(fp, 0)}, "
                                f"{len(set(got))} events counted, {len(want)} expected")
        total = sum(len(v) for v in expected.values())
        self.add(Check("alerts (guardrails): each event counted once into one alert per fingerprint", total,
                       sum(len(v) for v in events.values()), missing=missing, duplicated=duplicated, wrong=wrong,
                       note=f"{len(expected)} fingerprints", evidence=evidence[:10]))

    async def check_billing_alerts(self) -> None:
        def month(at: datetime) -> str:
            return at.astimezone(UTC).strftime("%Y-%m")

        # A monthly budget per tenant: spend per (tenant, month) from the ground truth and the judge's rows.
        spend: dict[tuple[str, str], Decimal] = collections.defaultdict(Decimal)
        for t in (ledger_truth(p, self.prices) for p in self.accepted if p.billable):
            spend[(t.tenant, month(t.occurred_at))] += t.cost or Decimal(0)
        for r in await self.pool.fetch("SELECT tenant_id, occurred_at, cost_total FROM usage_ledger "
                                       "WHERE $1 = ANY(tags)", JUDGE_TAG):
            spend[(r["tenant_id"], month(r["occurred_at"]))] += r["cost_total"] or Decimal(0)
        expected = {(tenant, m, th) for (tenant, m), spent in spend.items() for th in BUDGET_THRESHOLDS
                    if spent * 100 >= BUDGET_AMOUNT * th}
        sent = await self.pool.fetch(
            "SELECT b.tenant_id, s.period_start, s.threshold FROM budget_alerts_sent s JOIN budgets b "
            "ON b.id = s.budget_id WHERE s.budget_id = ANY($1)", list(self.budgets.values()))
        got = collections.Counter((r["tenant_id"], month(r["period_start"]), r["threshold"]) for r in sent)
        unpriced_tenants = {p.tenant for p in self.accepted if p.unpriced}
        unpriced = await self.pool.fetch("SELECT tenant_id, alerted_at FROM unpriced_models WHERE tenant_id = ANY($1)",
                                         list(TENANTS))
        alerted = collections.Counter(r["tenant_id"] for r in unpriced if r["alerted_at"] is not None)
        # At the receiver: one alert id per budget crossing and per unpriced model.
        ids: dict[tuple[str, ...], set[str]] = collections.defaultdict(set)
        with self.receiver.lock:
            received = list(self.receiver.alerts.values())
        for a in received:
            if a.source == "billing" and a.rule == "budget.threshold":
                period = str(a.details.get("period_start", ""))[:7]
                ids[(a.tenant_id, a.rule, period, str(a.details.get("threshold_percent")))].add(a.alert_id)
            elif a.source == "billing":
                ids[(a.tenant_id, a.rule, str(a.details.get("model")))].add(a.alert_id)
        want_ids = {(t, "budget.threshold", m, str(th)) for t, m, th in expected} | {
            (t, "billing.unpriced_model", UNPRICED_MODEL[0]) for t in unpriced_tenants}
        missing = len(expected - set(got)) + len(unpriced_tenants - set(alerted)) + len(want_ids - set(ids))
        duplicated = (sum(n - 1 for n in got.values()) + sum(n - 1 for n in alerted.values())
                      + sum(len(v) - 1 for v in ids.values()))
        wrong = len(set(got) - expected) + len(set(alerted) - unpriced_tenants) + len(set(ids) - want_ids)
        self.add(Check("alerts (billing): budget crossings and unpriced models decided and delivered once",
                       len(expected) + len(unpriced_tenants), len(set(got) & expected) + len(set(alerted)),
                       missing=missing, duplicated=duplicated, wrong=wrong,
                       note=f"spend per tenant and month (USD): { {k: str(round(v, 6)) for k, v in spend.items()} }",
                       evidence=[*(f"received alert ids {k}: {sorted(v)}" for k, v in ids.items() if len(v) != 1),
                                 *(f"not received: {k}" for k in sorted(want_ids - set(ids))),
                                 *(f"not decided: {k}" for k in sorted(expected - set(got)))][:10]))

    async def check_deliveries(self) -> None:
        published: dict[str, AlertMessage] = {}
        for value in await self.kafka.read_all(ALERTS):
            with contextlib.suppress(ValueError):
                alert = AlertMessage.model_validate_json(value)
                if alert.tenant_id in TENANTS:
                    published[alert.message_id] = alert
        with self.receiver.lock:
            received = dict(self.receiver.deliveries)
            received_alerts = dict(self.receiver.alerts)
        missing = sorted(set(published) - set(received))
        # The latest state of every guardrails alert reached the receiver.
        latest: dict[str, int] = {}
        for a in published.values():
            latest[a.alert_id] = max(latest.get(a.alert_id, 0), a.count)
        seen: dict[str, int] = {}
        for a in received_alerts.values():
            seen[a.alert_id] = max(seen.get(a.alert_id, 0), a.count)
        stale = sorted(i for i, n in latest.items() if seen.get(i, 0) < n)
        # A message the notifier superseded (a later state of the same alert was delivered in its place, so a
        # stale state never reaches the pager after a newer one) is not lost: that alert's newer state is there.
        superseded = [m for m in missing if seen.get(published[m].alert_id, 0) > published[m].count]
        missing = [m for m in missing if m not in set(superseded)]
        failed = await self.pool.fetch(
            """SELECT message_id, attempts, error, created_at FROM notification_deliveries d
               WHERE channel_id = ANY($1) AND status = 'failed' AND NOT EXISTS (
                   SELECT 1 FROM notification_deliveries x WHERE x.message_id = d.message_id
                     AND x.channel_id = d.channel_id AND x.status = 'delivered')""", self.channels[EVERY_PATH])
        redelivered = sum(n - 1 for n in received.values())
        lost_ids = {m.split(":")[0] for m in missing} | {r["message_id"].split(":")[0] for r in failed}
        log_lines = await asyncio.to_thread(grep_log, self.logs / "guardrails-notifier.log", lost_ids, 6)
        self.add(Check("every alert message delivered to the webhook at least once (counted once by message id), "
                       "or superseded by a later state of its alert that was",
                       len(published), len(set(published) & set(received)) + len(superseded), missing=len(missing),
                       wrong=len(stale) + len(failed),
                       note=(f"{redelivered} redelivery(ies) counted once; {len(superseded)} superseded by a later "
                             f"state of their alert, which was delivered; {len(failed)} delivery(ies) recorded "
                             f"'failed' and never delivered; {len(stale)} alert(s) whose latest state was not "
                             f"delivered; {self.receiver.refused} request(s) refused during the endpoint outage"),
                       evidence=[*(f"not delivered: {m}" for m in missing[:10]),
                                 *(f"recorded failed: {r['message_id']} after {r['attempts']} attempt(s): "
                                   f"{r['error']}" for r in failed[:10]),
                                 *(f"guardrails-notifier.log: {line}" for line in log_lines),
                                 *(f"delivered {n} times (counted once): {m}" for m, n in received.items() if n > 1)]))

    async def check_throttled_deliveries(self) -> None:
        """The throttled channel: every alert reaches it at least once (its repeats may be suppressed)."""
        opened: set[str] = set()
        for value in await self.kafka.read_all(ALERTS):
            with contextlib.suppress(ValueError):
                alert = AlertMessage.model_validate_json(value)
                if alert.tenant_id in TENANTS and alert.status != "resolved":
                    opened.add(alert.alert_id)
        with self.receiver.lock:
            got = {self.receiver.alerts[m].alert_id for m in self.receiver.throttled if m in self.receiver.alerts}
            redelivered = sum(n - 1 for n in self.receiver.throttled.values())
        rows = await self.pool.fetch(
            "SELECT status, count(*) AS n FROM notification_deliveries WHERE channel_id = ANY($1) GROUP BY 1",
            self.channels[THROTTLED_PATH])
        missing = sorted(opened - got)
        log_lines = await asyncio.to_thread(grep_log, self.logs / "guardrails-notifier.log", missing, 4)
        self.add(Check("every alert delivered at least once to a throttled channel (repeats suppressed)",
                       len(opened), len(opened & got), missing=len(missing), wrong=len(got - opened),
                       note=f"deliveries by status: { {r['status']: r['n'] for r in rows} }; {redelivered} "
                            "redelivery(ies)",
                       evidence=[*(f"never delivered: alert {a}" for a in missing[:10]),
                                 *(f"guardrails-notifier.log: {line}" for line in log_lines)]))

    # -- evaluator ---------------------------------------------------------------------------------
    async def check_judgments(self) -> None:
        expected = {(p.event_id, EVALUATOR_ID, rubric, version) for p in self.accepted if p.judged
                    for rubric, version in RUBRICS}
        rows = await self.pool.fetch(
            """SELECT event_id::text AS id, evaluator_id, rubric, rubric_version, status, error_type
               FROM evaluation_results WHERE tenant_id = ANY($1)""", list(TENANTS))
        counts = collections.Counter((r["id"], r["evaluator_id"], r["rubric"], r["rubric_version"]) for r in rows)
        failed = [r for r in rows if r["status"] != "ok"]
        unexpected = set(counts) - expected
        self.add(Check("judgments: one per sampled event and rubric, none failed", len(expected),
                       len(expected & set(counts)), missing=len(expected - set(counts)),
                       duplicated=sum(n - 1 for n in counts.values()), wrong=len(failed) + len(unexpected),
                       note=(f"{len(failed)} not ok: {dict(collections.Counter(r['status'] for r in failed))}; "
                             f"{len(unexpected)} judgment(s) of events not sampled"),
                       evidence=[f"{r['id']} {r['rubric']}: {r['status']} {r['error_type']}" for r in failed[:10]]))

    async def check_dead_letters(self) -> None:
        rows = await self.pool.fetch("SELECT consumer, reason, left(error, 200) AS error FROM dead_letters")
        self.add(Check("no dead letters", 0, len(rows), wrong=len(rows),
                       evidence=[f"{r['consumer']}: {r['reason']}: {r['error']}" for r in rows[:10]]))

    def check_exits(self, supervisor: Supervisor) -> None:
        exits = supervisor.exits
        self.add(Check("no unplanned process exit", 0, len(exits), wrong=len(exits),
                       note=", ".join(f"{e.service} (code {e.returncode}) at {e.at_s} s" for e in exits),
                       evidence=[f"{e.service} exited {e.returncode} at {e.at_s} s; last log lines:\n    "
                                 + "\n    ".join(e.log_tail) for e in exits[:6]]))

    # -- leaks -------------------------------------------------------------------------------------
    async def check_leaks(self, logs: Sequence[Path], redis_files: Sequence[Path]) -> None:
        canaries = Canaries((f.value for p in self.traffic.planned for f in p.planted), self.traffic.run_id)
        where: list[str] = []
        tables = await self.pool.fetch(
            """SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind = 'r' AND c.relpersistence <> 't'
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'""")
        rows_scanned = 0
        async with self.pool.acquire() as conn, conn.transaction():
            for t in tables:
                name = f'"{t["s"]}"."{t["t"]}"'
                async for r in conn.cursor(f"SELECT row_to_json(x)::text AS j FROM {name} x"):  # noqa: S608
                    rows_scanned += 1
                    text = r["j"]
                    hits = canaries.find(text) | canaries.find(_unhex(text))
                    where += [f"postgres {t['t']}: {h}" for h in hits]
        db_hits = len(where)
        self.add(Check("no canary in Postgres (every column of every table)", 0, db_hits, wrong=db_hits,
                       note=f"{len(canaries.values)} canaries, {len(tables)} tables, {rows_scanned} rows",
                       evidence=where[:10]))
        log_hits = await asyncio.to_thread(search_logs, canaries, logs)
        self.add(Check("no canary in any process log", 0, len(log_hits), wrong=len(log_hits),
                       note=f"{len(logs)} logs: {', '.join(p.name for p in logs)}", evidence=log_hits[:10]))
        clean = await self.kafka.read_all(INTERACTIONS_CLEAN)
        with self.receiver.lock:
            bodies = list(self.receiver.bodies)
        out_hits = [f"clean topic: {h}" for v in clean for h in canaries.find(v.decode(errors="replace"))]
        out_hits += [f"notification: {h}" for b in bodies for h in canaries.find(b.decode(errors="replace"))]
        self.add(Check("no canary on the clean topic or in a notification", 0, len(out_hits), wrong=len(out_hits),
                       note=f"{len(clean)} clean events, {len(bodies)} notifications", evidence=out_hits[:10]))
        redis_hits = await asyncio.to_thread(search_logs, canaries, redis_files)
        self.add(Check("no canary in Redis (its append-only files)", 0, len(redis_hits), wrong=len(redis_hits),
                       note=f"{len(redis_files)} file(s), {sum(p.stat().st_size for p in redis_files)} bytes",
                       evidence=redis_hits[:10]))


def grep_log(path: Path, needles: Iterable[str], limit: int) -> list[str]:
    """The first `limit` lines of a log that name any of `needles` (evidence for a failed check)."""
    wanted = [n for n in needles if n]
    found: list[str] = []
    if not wanted or not path.exists():
        return found
    with open(path, errors="replace") as f:
        for line in f:
            if any(n in line for n in wanted):
                found.append(line.strip()[:400])
                if len(found) >= limit:
                    break
    return found


def search_logs(canaries: Canaries, logs: Sequence[Path]) -> list[str]:
    hits: list[str] = []
    for path in logs:
        if not path.exists():
            continue
        with open(path, errors="replace") as f:
            for n, line in enumerate(f, 1):
                hits += [f"{path.name}:{n}: {h}" for h in canaries.find(line)]
    return hits


_HEX = re.compile(r"\\\\x([0-9a-f]+)")


def _unhex(text: str) -> str:
    """bytea values appear as hex in row_to_json: decode them, so a canary inside one is found too."""
    parts = []
    for m in _HEX.finditer(text):
        with contextlib.suppress(ValueError):
            parts.append(bytes.fromhex(m.group(1)).decode(errors="replace"))
    return "\n".join(parts)


# ==================================================================================================
# The run.


def service_specs(ports: dict[str, int], common: dict[str, Any], salt: str, base_env: dict[str, str],
                  webhook_url: str) -> list[ServiceSpec]:
    worker = {"batch_max_wait_ms": 100, "consumer_session_timeout_ms": 6000, "db_retry_max_s": 2.0}

    def env(settings: BaseSettings, fields: Iterable[str], **extra: str) -> dict[str, str]:
        return {**base_env, **environment(settings, [*common, *fields]), **extra}

    # The judge: an operator credential granted to the judged tenant for the fake LLM only, and the one
    # egress allowance it needs on loopback (docs/security.md).
    judge_url = f"http://127.0.0.1:{ports['fake_llm']}/v1"
    judge_env = {JUDGE_KEY_ENV: "fake-llm-accepts-any-key", "LLMOPS_EGRESS_ALLOW": f"127.0.0.1:{ports['fake_llm']}",
                 "LLMOPS_EVALUATOR_CREDENTIALS": json.dumps({JUDGE_CREDENTIAL: {
                     "key_env": JUDGE_KEY_ENV, "base_urls": [judge_url], "tenants": [JUDGED_TENANT]}})}
    # The webhook receiver: the one egress allowance the guardrails API (it checks channel URLs) and the
    # notifier need on loopback; and a channel key of the run's own, which seals the channels' URLs and secrets.
    receiver = urlsplit(webhook_url)
    channels_env = {"LLMOPS_EGRESS_ALLOW": f"{receiver.hostname}:{receiver.port}",
                    "LLMOPS_GUARDRAILS_CHANNEL_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode()}
    guardrails = GuardrailsSettings(**common, **worker, finding_hash_salt=salt, port=ports["guardrails_api"])
    # Parked deliveries and lapsed claims come back within seconds here (defaults: 30 s, 60 s): the run
    # waits for them, it does not excuse them.
    notifier = NotifierSettings(**common, **worker, timeout_s=2.0, backoff_base_s=0.2, backoff_max_s=1.0,
                                park_backoff_base_s=1.0, park_backoff_max_s=4.0, claim_lease_s=5.0,
                                breaker_cooldown_s=2.0)
    billing = BillingSettings(**common, **worker, port=ports["billing_api"], outbox_relay_interval_s=1.0,
                              outbox_relay_min_age_s=2.0)
    evaluator = EvaluatorSettings(**common, **worker, port=ports["evaluator_api"], judge_base_delay_s=0.2,
                                  judge_max_delay_s=2.0, judge_attempt_timeout_s=10.0, judge_deadline_s=60.0)
    ingest = IngestSettings(**common, port=ports["ingest"])
    return [
        ServiceSpec("fake-llm", "llmops_devtools.fake_openai",
                    {**base_env, "LLMOPS_FAKE_LLM_PORT": str(ports["fake_llm"]), "LLMOPS_FAKE_LLM_LATENCY_MS": "30"},
                    port=ports["fake_llm"]),
        ServiceSpec("ingest-api", "llmops_ingest.api", env(ingest, ["port"]), port=ports["ingest"]),
        ServiceSpec("guardrails-api", "llmops_guardrails.api",
                    env(guardrails, ["port", "finding_hash_salt"], **channels_env), port=ports["guardrails_api"]),
        ServiceSpec("billing-api", "llmops_billing.api", env(billing, ["port"]), port=ports["billing_api"]),
        ServiceSpec("evaluator-api", "llmops_evaluator.api", env(evaluator, ["port"], **judge_env),
                    port=ports["evaluator_api"]),
        ServiceSpec("guardrails-worker", "llmops_guardrails.worker",
                    env(guardrails, [*worker, "finding_hash_salt"]), ready_log="worker started"),
        ServiceSpec("guardrails-notifier", "llmops_guardrails.notifier",
                    env(notifier, [*worker, "timeout_s", "backoff_base_s", "backoff_max_s", "park_backoff_base_s",
                                   "park_backoff_max_s", "claim_lease_s", "breaker_cooldown_s"], **channels_env),
                    ready_log="worker started"),
        ServiceSpec("billing-worker", "llmops_billing.worker",
                    env(billing, [*worker, "outbox_relay_interval_s", "outbox_relay_min_age_s"]),
                    ready_log="worker started"),
        ServiceSpec("evaluator-worker", "llmops_evaluator.worker",
                    env(evaluator, [*worker, "judge_base_delay_s", "judge_max_delay_s", "judge_attempt_timeout_s",
                                    "judge_deadline_s"], **judge_env),
                    ready_log="worker started"),
    ]


async def set_up_tenants(pool: asyncpg.Pool, ports: dict[str, int], receiver: Receiver
                         ) -> tuple[dict[str, str], dict[str, int], dict[str, list[int]]]:
    """Keys (in Postgres, as `llmops keys create` does), then channels, budgets and the evaluator through the APIs."""
    ingest_keys, budgets = {}, {}
    channels: dict[str, list[int]] = {EVERY_PATH: [], THROTTLED_PATH: []}
    async with httpx.AsyncClient(timeout=30) as http:
        for tenant in TENANTS:
            ingest_keys[tenant] = (await apikeys.create_key(pool, tenant_id=tenant, scopes=["ingest:write"],
                                                            name="chaos")).secret
            admin = (await apikeys.create_key(pool, tenant_id=tenant, scopes=["admin"], name="chaos-admin")).secret
            auth = {"Authorization": f"Bearer {admin}"}
            for path, repeat_s in ((EVERY_PATH, 0), (THROTTLED_PATH, 3600)):
                resp = await http.post(f"http://127.0.0.1:{ports['guardrails_api']}/v1/channels", headers=auth,
                                       json={"name": f"chaos{path.replace('/', '-')}", "kind": "webhook",
                                             "url": receiver.url + path, "min_severity": "info",
                                             "repeat_interval_s": repeat_s})
                _expect(resp, 201, "create a webhook channel")
                channels[path].append(int(resp.json()["channel_id"]))
            resp = await http.post(f"http://127.0.0.1:{ports['billing_api']}/v1/budgets", headers=auth, json={
                "period": "month", "amount": str(BUDGET_AMOUNT), "thresholds": list(BUDGET_THRESHOLDS),
                "name": "chaos"})
            _expect(resp, 201, "create the budget")
            budgets[tenant] = int(resp.json()["id"])
            if tenant == JUDGED_TENANT:
                resp = await http.post(f"http://127.0.0.1:{ports['evaluator_api']}/v1/evaluators", headers=auth, json={
                    "id": EVALUATOR_ID, "apps": [JUDGED_APP], "rubrics": [f"{r}@{v}" for r, v in RUBRICS],
                    "sample_rate": SAMPLE_RATE, "max_concurrency": 4, "daily_spend_cap_usd": "1000",
                    "judge": {"model": JUDGE_MODEL, "provider": JUDGE_PROVIDER,
                              "base_url": f"http://127.0.0.1:{ports['fake_llm']}/v1", "credential": JUDGE_CREDENTIAL,
                              "input_usd_per_mtok": "0.15", "output_usd_per_mtok": "0.60"}})
                _expect(resp, 201, "create the evaluator")
    return ingest_keys, budgets, channels


def append_line(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(line)


async def tamper(pool: asyncpg.Pool, traffic: Traffic, receiver: Receiver, logs: Path, redis_url: str) -> list[str]:
    """`--tamper`: damage one result of each kind the checks look at, so that a run shows each check failing
    by exactly that much (a harness whose checks cannot fail proves nothing)."""
    done = []
    billable = next(p for p in traffic.planned if p.accepted and p.billable)
    await pool.execute("DELETE FROM usage_ledger WHERE event_id = $1::uuid", billable.event_id)
    done.append(f"ledger row of {billable.event_id} deleted: ledger missing 1")
    await pool.execute("UPDATE usage_daily SET event_count = event_count + 1 "
                       "WHERE ctid = (SELECT ctid FROM usage_daily LIMIT 1)")
    done.append("one usage_daily cell's event_count + 1: that rollup duplicated 1")
    planted = next(p for p in traffic.planned if p.accepted and p.planted)
    await pool.execute("DELETE FROM guardrail_findings WHERE event_id = $1::uuid AND start_offset = $2",
                       planted.event_id, planted.planted[0].start)
    done.append(f"a planted finding of {planted.event_id} deleted: findings missing 1")
    await pool.execute("UPDATE evaluation_results SET status = 'error', score = NULL, error_type = 'tampered' "
                       "WHERE ctid = (SELECT ctid FROM evaluation_results LIMIT 1)")
    done.append("one judgment set to error: judgments wrong 1")
    canary = planted.planted[0].value
    await pool.execute("UPDATE guardrail_alerts SET summary = summary || $1 WHERE ctid = (SELECT ctid FROM "
                       "guardrail_alerts LIMIT 1)", f" {canary}")
    done.append("a canary written into guardrail_alerts.summary: Postgres leak 1")
    line = f'{{"msg": "tampered", "value": "{canary}"}}\n'
    await asyncio.to_thread(append_line, logs / "guardrails-worker.log", line)
    done.append("a canary appended to guardrails-worker.log: log leak 1")
    with receiver.lock:
        message_id = next(iter(receiver.deliveries))
        del receiver.deliveries[message_id]
    done.append(f"delivery of {message_id} forgotten by the receiver: deliveries missing 1")
    with receiver.lock:
        alert_id = receiver.alerts[next(iter(receiver.throttled))].alert_id
        for m in [m for m in receiver.throttled if receiver.alerts[m].alert_id == alert_id]:
            del receiver.throttled[m]
    done.append(f"alert {alert_id} forgotten on the throttled channel: throttled missing 1")
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        await client.set("chaos:tampered", canary)
    finally:
        await client.aclose()
    await asyncio.sleep(1.5)  # the append-only file is written every second
    done.append("a canary set in Redis: Redis leak 1")
    for line in done:
        say(f"tamper: {line}")
    return done


def _expect(resp: httpx.Response, status: int, what: str) -> None:
    if resp.status_code != status:
        raise RuntimeError(f"could not {what}: {resp.status_code} {resp.text[:500]}")


async def drain(plan: Plan, kafka: KafkaWatch, pool: asyncpg.Pool, receiver: Receiver
                ) -> tuple[dict[str, GroupState] | None, float]:
    """Until every group's lag is zero twice in a row 2 s apart, with nothing new on any topic meanwhile, the
    billing outbox empty, and every alert message on the topic received by the webhook (bounded)."""
    started = time.monotonic()
    deadline = started + plan.drain_timeout_s
    last: dict[str, GroupState] | None = None
    stable = 0
    said = 0.0
    while time.monotonic() < deadline:
        state = await kafka.groups()
        if time.monotonic() - said > 10:
            said = time.monotonic()
            say(f"draining: lag {None if state is None else {g: s.lag for g, s in state.items()}}")
        pending_outbox = None
        with contextlib.suppress(Exception):
            pending_outbox = await pool.fetchval("SELECT count(*) FROM billing_alert_outbox WHERE published_at IS NULL")
        if (state is not None and all(s.lag == 0 for s in state.values()) and pending_outbox == 0
                and last is not None and state == last):
            stable += 1
            if stable >= 2:
                break
        else:
            stable = 0
        last = state
        await asyncio.sleep(2)
    lag_zero = time.monotonic()
    say(f"lag zero everywhere after {lag_zero - started:.1f} s")
    # Deliveries a notifier may still be retrying: wait (bounded) until the receiver has every alert message.
    grace = time.monotonic() + plan.delivery_grace_s
    while time.monotonic() < grace:
        published = set()
        for value in await kafka.read_all(ALERTS):
            with contextlib.suppress(ValueError):
                alert = AlertMessage.model_validate_json(value)
                if alert.tenant_id in TENANTS:
                    published.add(alert.message_id)
        with receiver.lock:
            if published <= set(receiver.deliveries):
                break
        await asyncio.sleep(2)
    else:
        say(f"some alert messages not delivered within {plan.delivery_grace_s} s after the lag reached zero")
    return await kafka.groups(), time.monotonic() - started


async def run(plan: Plan, workdir: Path, stack_home: Path, keep: bool
              ) -> tuple[list[FaultResult], list[Check], dict[str, Any]]:
    run_id = uuid.uuid4().hex[:8]
    ports = pick_ports()
    say(f"run {run_id} in {workdir}; ports {ports}")
    db_url = f"postgresql://postgres@127.0.0.1:{ports['postgres']}/llmops_chaos"
    common = {"kafka_bootstrap": f"127.0.0.1:{ports['kafka']}", "database_url": db_url,
              "redis_url": f"redis://127.0.0.1:{ports['redis']}/0", "log_level": plan.log_level}
    salt = f"chaos-salt-{run_id}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    base_env["PYTHONUNBUFFERED"] = "1"
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    servers = Servers(stack_home, CommonSettings(**common))
    supervisor = Supervisor(logs)
    receiver = Receiver(plan.webhook_latency_ms)
    kafka = KafkaWatch(common["kafka_bootstrap"])
    traffic = Traffic(plan.seed, run_id)
    pool: asyncpg.Pool | None = None
    watcher: asyncio.Task[None] | None = None
    info: dict[str, Any] = {"run_id": run_id, "workdir": str(workdir), "ports": ports}
    try:
        await asyncio.to_thread(servers.up)
        pool = await asyncpg.create_pool(db_url, min_size=0, max_size=4)
        receiver.start()
        specs = service_specs(ports, common, salt, base_env, receiver.url)
        apis = [s for s in specs if s.port is not None]
        workers = [s for s in specs if s.port is None]
        for spec in apis:
            supervisor.spawn(spec)
        await asyncio.gather(*(supervisor.ready(s.name) for s in apis))
        keys, budgets, channels = await set_up_tenants(pool, ports, receiver)
        for spec in workers:  # after the evaluator exists: a worker loads evaluators when it starts
            supervisor.spawn(spec)
        await asyncio.gather(*(supervisor.ready(s.name) for s in workers))
        watcher = asyncio.create_task(supervisor.watch())
        say("every service is up; load starts")
        info["setup_s"] = round(time.monotonic() - STARTED, 1)

        load = Load(traffic, f"http://127.0.0.1:{ports['ingest']}", keys, plan.rate)
        chaos = Chaos(plan, servers=servers, supervisor=supervisor, receiver=receiver, load=load, kafka=kafka)
        load_started = time.monotonic()
        generator = asyncio.create_task(load.generate())
        sender_deadline = [float("inf")]
        sender = asyncio.create_task(load.send(lambda: time.monotonic() > sender_deadline[0]))
        await chaos.run()
        await asyncio.sleep(max(3.0, plan.duration_s - (time.monotonic() - load_started)))
        load.generating = False
        sender_deadline[0] = time.monotonic() + plan.drain_timeout_s
        await generator
        await sender
        info["load_s"] = round(time.monotonic() - load_started, 1)
        say(f"load done: {len(traffic.planned)} events generated, {load.stats.accepted} accepted; draining")
        lag, drained = await drain(plan, kafka, pool, receiver)
        info["drain_s"] = round(drained, 1)
        say(f"drained in {drained:.1f} s; lag {lag}")
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        watcher = None
        await asyncio.to_thread(supervisor.stop_all)
        await pool.close()
        pool = await asyncpg.create_pool(db_url, min_size=0, max_size=4)
        checks_started = time.monotonic()
        verifier = Verifier(pool, traffic, receiver=receiver, kafka=kafka, salt=salt, budgets=budgets, logs=logs,
                            channels=channels)
        if plan.tamper:
            info["tampered"] = await tamper(pool, traffic, receiver, logs, common["redis_url"])
        await verifier.run(load, supervisor, lag, chaos.results)
        await verifier.check_leaks([*sorted(logs.glob("*.log")), *servers.logs()], servers.redis_files())
        info["checks_s"] = round(time.monotonic() - checks_started, 1)
        info.update(events=len(traffic.planned), accepted=load.stats.accepted,
                    kinds=dict(collections.Counter(p.kind for p in traffic.planned)),
                    judged=sum(p.judged for p in traffic.planned if p.accepted),
                    notifications=sum(receiver.deliveries.values()),
                    restarts={k: v - 1 for k, v in supervisor.starts.items() if v > 1})
        return chaos.results, verifier.checks, info
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await kafka.close()
        await asyncio.to_thread(supervisor.stop_all)
        if pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 10)
        with contextlib.suppress(Exception):
            receiver.stop()
        await asyncio.to_thread(servers.down)
        for path in servers.logs():  # evidence stays with the run
            with contextlib.suppress(OSError):
                shutil.copyfile(path, logs / f"stack-{path.name}")
        if not keep:
            shutil.rmtree(stack_home, ignore_errors=True)


# ==================================================================================================
# Report.


def tables(faults: Sequence[FaultResult], checks: Sequence[Check]) -> str:
    out = ["| fault | round | at (s) | downtime (s) | recovery (s) | note |", "|---|---|---|---|---|---|"]
    for f in faults:
        recovery = "**not within the limit**" if f.recovery_s is None else f"{f.recovery_s}"
        out.append(f"| {f.fault} | {f.round} | {f.at_s} | {f.downtime_s} | {recovery} | {f.note} |")
    out += ["", "| check | expected | found | missing | duplicated | wrong | result | note |",
            "|---|---|---|---|---|---|---|---|"]
    for c in checks:
        result = "ok" if c.passed else "**FAIL**"
        out.append(f"| {c.name} | {c.expected} | {c.found} | {c.missing} | {c.duplicated} | {c.wrong} | {result} | "
                   f"{c.note.replace('|', '/')} |")
    failed = [c for c in checks if not c.passed and c.evidence]
    for c in failed:
        out += ["", f"Evidence, {c.name}:", *(f"  - {e}" for e in c.evidence)]
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> tuple[Plan, Path | None, bool, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--short", action="store_true", help="the short form (CI): small numbers, each fault once")
    parser.add_argument("--duration", type=float, help="seconds of load (at least; faults may extend it)")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--rate", type=float, help="events per second")
    parser.add_argument("--rounds", type=int, help="how many times each fault is injected")
    parser.add_argument("--pg-down-s", type=float)
    parser.add_argument("--redis-down-s", type=float)
    parser.add_argument("--webhook-down-s", type=float)
    parser.add_argument("--drain-timeout-s", type=float, help="how long the lag may take to reach zero")
    parser.add_argument("--delivery-grace-s", type=float,
                        help="then, how long alert deliveries still being retried may take to arrive")
    parser.add_argument("--webhook-latency-ms", type=float, default=150.0, help="the webhook's answer time")
    parser.add_argument("--log-level", default="DEBUG", help="the services' log level (DEBUG: most text to search)")
    parser.add_argument("--workdir", type=Path, help="the run's folder (default: a new one under /tmp)")
    parser.add_argument("--json", type=Path, help="write the report here too (default: <workdir>/report.json)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' data folders")
    parser.add_argument("--tamper", action="store_true",
                        help="test the harness: corrupt one result per check before checking (each must fail)")
    args = parser.parse_args(argv)
    preset = SHORT if args.short else LONG

    def pick(value: Any, key: str) -> Any:
        return preset[key] if value is None else value

    plan = Plan(duration_s=pick(args.duration, "duration"), seed=args.seed, rate=pick(args.rate, "rate"),
                rounds=pick(args.rounds, "rounds"), pg_down_s=pick(args.pg_down_s, "pg_down_s"),
                redis_down_s=pick(args.redis_down_s, "redis_down_s"),
                webhook_down_s=pick(args.webhook_down_s, "webhook_down_s"),
                drain_timeout_s=pick(args.drain_timeout_s, "drain_timeout_s"),
                delivery_grace_s=pick(args.delivery_grace_s, "delivery_grace_s"),
                webhook_latency_ms=args.webhook_latency_ms,
                recovery_timeout_s=preset["recovery_timeout_s"], log_level=args.log_level, short=args.short,
                tamper=args.tamper)
    return plan, args.workdir, args.keep, args.json


def main(argv: Sequence[str] | None = None) -> int:
    plan, workdir, keep, json_path = parse_args(argv)
    for noisy in ("aiokafka", "asyncpg"):  # the harness's own clients complain while their server is down
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="llmops-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    json_path = json_path or workdir / "report.json"
    stack_home = Path(tempfile.mkdtemp(prefix="llmops-chaos-stack-"))
    stack_home.chmod(0o755)  # Postgres runs as its own user when we are root: it must reach its folder
    say(f"plan: {plan}")

    async def guarded() -> tuple[list[FaultResult], list[Check], dict[str, Any]]:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            if task is not None:
                loop.add_signal_handler(sig, task.cancel)
        return await run(plan, workdir, stack_home, keep)

    started = time.monotonic()
    try:
        faults, checks, info = asyncio.run(guarded())
    except (Exception, asyncio.CancelledError, KeyboardInterrupt) as exc:
        traceback.print_exc()
        say(f"the harness could not complete: {exc!r}")
        json_path.write_text(json.dumps({"plan": asdict(plan), "error": repr(exc)}, indent=2))
        return 2
    info["elapsed_s"] = round(time.monotonic() - started, 1)
    report = {"plan": asdict(plan), "info": info, "faults": [asdict(f) for f in faults],
              "checks": [{**asdict(c), "passed": c.passed} for c in checks],
              "passed": all(c.passed for c in checks)}
    json_path.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nChaos run {info['run_id']} (seed {plan.seed}): {info['events']} events ({info['accepted']} accepted), "
          f"{len(faults)} faults; set-up {info['setup_s']} s, load {info['load_s']} s, drain {info['drain_s']} s, "
          f"checks {info['checks_s']} s, {info['elapsed_s']} s in all. Logs and report: {workdir}\n")
    print(tables(faults, checks), flush=True)
    failed = [c.name for c in checks if not c.passed]
    print(f"\n{'FAILED: ' + '; '.join(failed) if failed else 'PASSED: zero lost, zero duplicated, zero leaked'}",
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
