"""Where batches go: the ingest API over HTTP (the default), or straight to Kafka.

A transport sends one batch of serialized events and says what happened as a `Delivery`; it never
sleeps or retries itself (the recorder's sender thread does that) and never raises for an outcome it can
name. Transports run only on the sender thread.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

log = logging.getLogger("llmops_sdk")

INGEST_PATH = "/v1/interactions"
_OPEN, _CLOSE = b'{"interactions":[', b"]}"
ENVELOPE_BYTES = len(_OPEN + _CLOSE)
"""What a request body holds besides its events and the commas between them."""
USER_AGENT = "llmops-sdk/0.1 (python)"

# Statuses worth another try: the server is busy, restarting or cannot reach Kafka right now.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Payload:
    """One serialized event: its Kafka key (the trace id) and its UTF-8 JSON."""

    key: bytes
    value: bytes


@dataclass
class Delivery:
    """What became of one batch.

    `retry` set: nothing was taken, send the same batch again (after `retry_after_s` if the server said).
    Otherwise `sent` events were accepted and `rejected` refused for good (the rest of a batch that was
    split is reported by the deliveries of its parts). `split` asks for the batch to be sent in halves
    (the server found it too large).
    """

    sent: int = 0
    rejected: int = 0
    retry: bool = False
    retry_after_s: float | None = None
    split: bool = False
    status: int | None = None
    reason: str = ""
    rejected_fields: list[str] = field(default_factory=list)


class Transport(Protocol):
    def send(self, batch: list[Payload]) -> Delivery: ...

    def close(self) -> None: ...


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class HTTPTransport:
    """`POST /v1/interactions` of the ingest API, on one kept-alive connection."""

    def __init__(self, endpoint: str, api_key: str, *, timeout_s: float = 10.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"endpoint must be an http(s) URL, not {endpoint!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        path = parts.path.rstrip("/")
        self.path = path if path.endswith(INGEST_PATH) else path + INGEST_PATH
        self.timeout_s = timeout_s
        self._ssl_context = ssl_context
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json, application/problem+json",
            "User-Agent": USER_AGENT,
        }
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        if self._conn is not None:
            return self._conn, True
        conn: http.client.HTTPConnection
        if self.scheme == "https":
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout_s,
                                               context=self._ssl_context or ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        self._conn = conn
        return conn, False

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None

    def send(self, batch: list[Payload]) -> Delivery:
        body = _OPEN + b",".join(p.value for p in batch) + _CLOSE
        for _ in range(2):
            conn, reused = self._connection()
            try:
                conn.request("POST", self.path, body=body, headers=self._headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                if reused and not isinstance(exc, (socket.timeout, TimeoutError)):
                    # A kept-alive connection the server closed while idle: one fresh try, at once.
                    continue
                return Delivery(retry=True, reason=f"{type(exc).__name__}")
            if response.getheader("connection", "").lower() == "close" or response.will_close:
                self._drop_connection()
            return self._outcome(response.status, response.getheader("retry-after"), data, len(batch))
        return Delivery(retry=True, reason="connection lost")

    @staticmethod
    def _outcome(status: int, retry_after: str | None, data: bytes, count: int) -> Delivery:
        if status in (200, 201, 202):
            return Delivery(sent=count, status=status)
        if status == 207:
            doc = _json_object(data)
            accepted, rejected = doc.get("accepted"), doc.get("rejected")
            if not isinstance(accepted, int) or not isinstance(rejected, int) or accepted + rejected != count:
                # The body does not add up: trust the per-index errors if there are any.
                errors = doc.get("errors")
                rejected = len(errors) if isinstance(errors, list) else 0
                accepted = count - rejected
            return Delivery(sent=accepted, rejected=rejected, status=status, reason="some events rejected",
                            rejected_fields=_rejected_fields(doc))
        if status in RETRY_STATUSES:
            return Delivery(retry=True, retry_after_s=retry_after_seconds(retry_after), status=status,
                            reason=f"HTTP {status}")
        if status == 413 and count > 1:
            return Delivery(split=True, status=status, reason="batch too large")
        doc = _json_object(data)
        message = _message(doc)
        return Delivery(rejected=count, status=status, reason=f"HTTP {status} {message}".strip()[:300],
                        rejected_fields=_rejected_fields(doc))

    def close(self) -> None:
        self._drop_connection()


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _message(doc: dict[str, Any]) -> str:
    """What an error answer says: a problem document's `detail` (or `title`), or an older API's `error`."""
    for key in ("detail", "title", "error"):
        if isinstance(doc.get(key), str):
            return str(doc[key])
    return ""


def _rejected_fields(doc: dict[str, Any]) -> list[str]:
    """The field names the server complained about (never values: they may hold prompt text).

    A 207 lists `{"index", "errors": [{"field", "message"}]}` per event; a 422 is a problem document whose
    `errors` are `{"loc": ["body", "interactions", 2, "usage", "input_tokens"], "msg", "type"}`.
    """
    names: set[str] = set()
    errors = doc.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if not isinstance(item, dict):
                continue
            for err in item.get("errors") or [item]:
                name = _field_name(err) if isinstance(err, dict) else None
                if name:
                    names.add(name)
    return sorted(names)


def _field_name(err: dict[str, Any]) -> str | None:
    if isinstance(err.get("field"), str):
        return str(err["field"])
    loc = err.get("loc")
    if not isinstance(loc, list):
        return None
    path = loc[1:] if loc[:1] == ["body"] else loc
    if path[:1] == ["interactions"] and len(path) > 1 and isinstance(path[1], int):
        path = path[2:]  # the event's place in the batch: not a field
    return ".".join(str(p) for p in path) or "(event)"


class KafkaTransport:
    """Straight to the broker with aiokafka (`pip install 'llmops-sdk[kafka]'`), for producers inside the
    platform that have no API key: the events carry the `tenant_id` given here and are not validated on
    the way in (the stream processors validate and dead-letter what does not fit the contract).

    aiokafka is asyncio-only, so the transport runs its own event loop on the sender thread.
    """

    def __init__(self, bootstrap: str, *, topic: str = "llm.interactions.raw", timeout_s: float = 10.0,
                 producer_options: dict[str, Any] | None = None) -> None:
        import asyncio

        import aiokafka  # noqa: F401 - fail at configuration time when the extra is missing

        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s
        self._options = dict(producer_options or {})
        self._loop = asyncio.new_event_loop()
        self._producer: Any = None

    async def _ready(self) -> Any:
        import asyncio

        from aiokafka import AIOKafkaProducer

        if self._producer is None:
            options: dict[str, Any] = {
                "acks": "all", "enable_idempotence": True, "linger_ms": 5,
                "request_timeout_ms": int(self.timeout_s * 1000), "client_id": "llmops-sdk",
                **self._options,
            }
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, **options)
            try:
                await asyncio.wait_for(producer.start(), self.timeout_s)
            except BaseException:
                await _stop_quietly(producer)
                raise
            self._producer = producer
        return self._producer

    async def _send(self, batch: list[Payload]) -> None:
        import asyncio

        producer = await self._ready()
        futures = [await producer.send(self.topic, p.value, key=p.key) for p in batch]
        await asyncio.wait_for(asyncio.gather(*futures), self.timeout_s)

    def send(self, batch: list[Payload]) -> Delivery:
        import asyncio

        from aiokafka.errors import KafkaError

        try:
            self._loop.run_until_complete(self._send(batch))
        except (KafkaError, OSError, TimeoutError, asyncio.TimeoutError) as exc:  # noqa: UP041 - distinct on 3.9
            # Start again with a fresh producer: one in an error state does not recover by itself.
            producer, self._producer = self._producer, None
            if producer is not None:
                self._loop.run_until_complete(_stop_quietly(producer))
            return Delivery(retry=True, reason=type(exc).__name__)
        return Delivery(sent=len(batch))

    def close(self) -> None:
        producer, self._producer = self._producer, None
        try:
            if producer is not None:
                self._loop.run_until_complete(_stop_quietly(producer))
        finally:
            self._loop.close()


async def _stop_quietly(producer: Any) -> None:
    try:
        await producer.stop()
    except Exception:
        log.debug("llmops: Kafka producer did not stop cleanly", exc_info=True)
